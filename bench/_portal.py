"""The portal's side of the comparison: send() and send_many() in this process, worker.py apart."""

import cProfile
import io
import pstats
import re
import time
from collections import Counter
from pathlib import Path

from _common import (
    PATIENT_SWEEP,
    RECIPIENT,
    ROOT,
    STALL_SECONDS,
    Workers,
    add_global_config,
    calibrate_body,
    clear_redis,
)

WARM_UP_CALLS = 20


BULK_CALL_MAILS = 500  # send_many's limit per call


class Portal:
    """One portal app on one database; the caller keeps its app context pushed."""

    def __init__(self, work: Path, kind: str, database_url: str, redis_url: str):
        from portal.app import create_app

        self.work, self.kind = work, kind
        instance = work / f"instance-{kind}"
        self.app = create_app(
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "INSTANCE_PATH": str(instance)}
        )
        self.worker_env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORTAL_INSTANCE_PATH": str(instance),
            **PATIENT_SWEEP,
        }
        self.body, self.size = "", 0
        self.spans: list[float] = []  # first to last sent_at of each drain

    def setup(self, smtp_port: int) -> None:
        """Migrate, point the global settings (grouping on) at the sink, size the body."""
        from flask import current_app
        from flask_migrate import upgrade

        from portal.extensions import db
        from portal.outbox.compose import compose
        from portal.settings.resolution import global_config, resolve

        upgrade()
        add_global_config("127.0.0.1", smtp_port)
        db.session.commit()
        global_config().group_sends = True
        db.session.commit()

        def render(subject: str, text: str) -> bytes:
            return compose(
                resolve(None),
                company=None,
                user=None,
                to=[RECIPIENT],
                subject=subject,
                text=text,
                max_bytes=current_app.config["MAIL_MAX_MESSAGE_BYTES"],
            ).raw

        self.body, self.size = calibrate_body(render, "bench 00000")

    def point_at(self, port: int) -> None:
        """Send to another loopback server from now on (commits)."""
        from portal.extensions import db
        from portal.settings.resolution import global_config

        config = global_config()
        config.port, config.egress_extra_ports = port, str(port)
        db.session.commit()

    def reset(self) -> None:
        """Empty the outbox and the RQ keys between phases."""
        from sqlalchemy import delete

        from portal import redis_client
        from portal.extensions import db
        from portal.models import OutboxAttempt, OutboxMessage

        db.session.execute(delete(OutboxAttempt))
        db.session.execute(delete(OutboxMessage))
        db.session.commit()
        clear_redis(redis_client.connection())

    def clean_up(self) -> None:
        """Reset after whatever was interrupted, an open transaction included."""
        from portal.extensions import db

        db.session.rollback()
        self.reset()

    def mail(self, i: int) -> dict:
        """The keyword arguments of `send()` for mail number i."""
        return {"to": [RECIPIENT], "subject": f"bench {i:05d}", "text": self.body}

    def _warm_up(self) -> None:
        from portal import outbox

        for i in range(WARM_UP_CALLS):
            outbox.send(None, **self.mail(90000 + i))
        self.reset()

    def queue(self, n: int) -> float:
        """Seconds for n `portal.outbox.send()` calls, no worker running."""
        from portal import outbox

        self._warm_up()
        start = time.perf_counter()
        for i in range(n):
            outbox.send(None, **self.mail(i))
        return time.perf_counter() - start

    def bulk(self, n: int) -> float | None:
        """Seconds for `portal.outbox.send_many()` of n mails, 500 a call; None without it."""
        from portal import outbox

        send_many = getattr(outbox, "send_many", None)
        if send_many is None:
            return None
        send_many(None, [self.mail(90000 + i) for i in range(WARM_UP_CALLS)])
        self.reset()
        mails = [self.mail(i) for i in range(n)]
        start = time.perf_counter()
        for first in range(0, n, BULK_CALL_MAILS):
            send_many(None, mails[first : first + BULK_CALL_MAILS])
        return time.perf_counter() - start

    def count(self, status: str = "sent") -> int:
        """How many outbox rows have this status now."""
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import OutboxMessage

        found = db.session.scalar(select(func.count()).where(OutboxMessage.status == status))
        db.session.rollback()  # the next look sees the worker's later commits
        return found

    def statuses(self) -> dict[str, int]:
        """Outbox rows by status."""
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import OutboxMessage

        query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        found = dict(db.session.execute(query).all())
        db.session.rollback()
        return found

    def wait_sent(self, n: int, workers: Workers, poll: float = 0.02) -> None:
        """Return once n rows are sent; raise when the worker exits or stops making progress."""
        last_progress, seen = time.monotonic(), -1
        while (done := self.count()) < n:
            if done != seen:
                seen, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise RuntimeError(f"portal stalled at {done}/{n} sent: {self.statuses()}")
            workers.check()
            time.sleep(poll)

    def drain(self, n: int, processes: int) -> float:
        """Seconds from starting worker.py to n mails marked sent in the database."""
        start = time.monotonic()
        with Workers(self.work, processes, f"drain-{self.kind}", self.worker_env) as workers:
            self.wait_sent(n, workers)
            took = time.monotonic() - start
        self.spans.append(self._sent_span())
        return took

    def _sent_span(self) -> float:
        """Seconds from the first row's sent_at to the last's: the worker without its start."""
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import OutboxMessage, as_utc

        first, last = db.session.execute(
            select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at))
        ).one()
        db.session.rollback()
        return (as_utc(last) - as_utc(first)).total_seconds()

    def count_statements(self, n: int) -> dict:
        """SQL statements and commits of n `send()` calls, counted on the engine."""
        from sqlalchemy import event

        from portal import outbox
        from portal.extensions import db

        verbs: Counter = Counter()
        commits = [0]

        def on_execute(_conn, _cursor, statement, *_args) -> None:
            verbs[statement.split(None, 1)[0].upper()] += 1

        def on_commit(_conn) -> None:
            commits[0] += 1

        self._warm_up()
        event.listen(db.engine, "before_cursor_execute", on_execute)
        event.listen(db.engine, "commit", on_commit)
        try:
            for i in range(n):
                outbox.send(None, **self.mail(i))
        finally:
            event.remove(db.engine, "before_cursor_execute", on_execute)
            event.remove(db.engine, "commit", on_commit)
        self.reset()
        return {"statements": dict(verbs), "commits": commits[0]}

    def profile(self, n: int, top: int = 20) -> str:
        """cProfile over n `send()` calls: the top functions by cumulative time."""
        from portal import outbox

        self._warm_up()
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(n):
            outbox.send(None, **self.mail(i))
        profiler.disable()
        self.reset()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(top)
        stats.print_callees(r"outbox/intake.py:\d+\(send\)")  # where one call's time goes
        text = out.getvalue().replace(str(ROOT) + "/", "")
        text = re.sub(r"\S*/site-packages/", "", text)
        return re.sub(r"\S*/lib/python3\.\d+/", "", text)  # the standard library's own
