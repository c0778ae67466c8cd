"""Real `python worker.py` processes for the worker tests, and what they delivered."""

import contextlib
import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest
from rq import Worker
from sqlalchemy import func, select

from portal import redis_client
from portal.extensions import db
from portal.models import FINAL_STATUSES, OutboxMessage
from support.smtp_servers import RecordingHandler

ROOT = Path(__file__).resolve().parent.parent.parent
WAIT_SECONDS = 120  # a bound for a broken build, not a speed target
STOP_GRACE_SECONDS = 10


class Workers:
    """Starts and kills `python worker.py` processes, each in its own process group."""

    def __init__(self, app_config: dict, log_dir: Path):
        self.env = {
            **os.environ,
            "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app_config["REDIS_URL"],
            "PORTAL_ENCRYPTION_KEYS": app_config["PORTAL_ENCRYPTION_KEYS"],
            "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"],
            "SECRET_KEY": app_config["SECRET_KEY"],
            # A PostgreSQL DATABASE_URL is production mode, which needs the base URL: the
            # test app's own (from its SERVER_NAME), so links in mail match either way.
            "PORTAL_BASE_URL": f"http://{app_config['SERVER_NAME']}",
            "PORTAL_WORKER_PROCESSES": "1",
            "MAIL_SWEEP_SECONDS": "1",
            "MAIL_LEASE_SECONDS": "3",
        }
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        """Start one worker.py (PORTAL_WORKER_PROCESSES engines) in a new process group."""
        log = open(self.log_dir / f"worker-{len(self.running)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running.append(process)
        return process

    def start_ready(self) -> subprocess.Popen:
        """Start a worker.py and return once each of its processes runs its engine."""
        before = registered()
        process = self.start()
        expected = int(self.env["PORTAL_WORKER_PROCESSES"])
        wait_for(lambda: len(registered() - before) >= expected, "the worker to start")
        return process

    def log(self, process: subprocess.Popen) -> str:
        """What this worker.py has written so far."""
        path = self.log_dir / f"worker-{self.running.index(process)}.log"
        return path.read_text(errors="replace")

    def send_signal(self, process: subprocess.Popen, sig: int) -> None:
        """Send `sig` to the whole process group: SIGSTOP starves every engine thread at once."""
        os.killpg(process.pid, sig)

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the pool and its workers), and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        """Stop every worker still running (all at once), and kill what lingers of their groups.

        The tests after this one need the processes gone, not a graceful end: a warm shutdown
        gets STOP_GRACE_SECONDS in all before the groups are killed.
        """
        running = [p for p in self.running if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the pool's children, if any linger
            process.wait()


def registered() -> set[str]:
    """The RQ workers registered in Redis: a pool process registers once its engine runs."""
    return {worker.name for worker in Worker.all(connection=redis_client.connection())}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (each time past the session's cache) until it holds, or fail."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        db.session.rollback()
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"waited {WAIT_SECONDS} s for {what}")


def wait_until_final(expected: int) -> None:
    """Wait until `expected` outbox rows have a final status."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        db.session.rollback()
        query = select(func.count()).where(OutboxMessage.status.in_(FINAL_STATUSES))
        if db.session.scalar(query) >= expected:
            return
        time.sleep(0.2)
    statuses = Counter(db.session.scalars(select(OutboxMessage.status)))
    pytest.fail(f"mail not delivered in {WAIT_SECONDS} s: {dict(statuses)}")


def message_ids(handler: RecordingHandler) -> Counter:
    """How many times each Message-ID arrived at the server."""
    parsed = (email.message_from_bytes(m.data, policy=policy.default) for m in handler.messages)
    return Counter(m["Message-ID"] for m in parsed)


def all_message_ids() -> set[str]:
    """The Message-ID of every outbox row."""
    db.session.rollback()
    return set(db.session.scalars(select(OutboxMessage.message_id)))
