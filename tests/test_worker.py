"""The real worker process (worker.py) against real Redis, database and SMTP servers."""

import contextlib
import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from support.factories import configure, queue, row
from support.oauth import consent
from support.smtp_servers import RecordingHandler, smtp_server

from portal import redis_client
from portal.extensions import db
from portal.models import FINAL_STATUSES, OAuthGrant, OutboxMessage, utcnow

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 120  # a bound for a broken build, not a speed target


class Workers:
    """Starts and kills `python worker.py` processes, each in its own process group."""

    def __init__(self, app_config, log_dir: Path):
        self.env = {
            **os.environ,
            "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app_config["REDIS_URL"],
            "PORTAL_ENCRYPTION_KEYS": app_config["PORTAL_ENCRYPTION_KEYS"],
            "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"],
            "SECRET_KEY": app_config["SECRET_KEY"],
            "PORTAL_WORKER_PROCESSES": "1",
            "MAIL_SWEEP_SECONDS": "1",
            "MAIL_LEASE_SECONDS": "3",
            "MAIL_HANDOFF_GRACE_SECONDS": "2",
        }
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
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

    def kill(self, process: subprocess.Popen, sig=signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the pool's children, if any linger
            process.wait()


@pytest.fixture
def workers(app, app_config, tmp_path):
    started = Workers(app_config, tmp_path)
    yield started
    started.stop_all()
    for log in sorted(tmp_path.glob("worker-*.log")):  # shown by pytest when a test fails
        print(f"--- {log.name}", log.read_text(errors="replace")[-3000:], sep="\n")


def wait_until_final(expected: int) -> None:
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
    parsed = (email.message_from_bytes(m.data, policy=policy.default) for m in handler.messages)
    return Counter(m["Message-ID"] for m in parsed)


def all_message_ids() -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(select(OutboxMessage.message_id)))


def test_grouping_on_sends_mails_queued_together_over_one_session(workers, people):
    with smtp_server() as server:
        configure(port=server.port, group_sends=True)
        workers.start()
        queue(people.acme, 10)
        wait_until_final(10)
    assert [len(c.messages) for c in server.handler.connections] == [10]


def test_grouping_off_sends_each_mail_over_its_own_session(workers, people):
    with smtp_server() as server:
        configure(port=server.port)
        workers.start()
        queue(people.acme, 5)
        wait_until_final(5)
    assert [len(c.messages) for c in server.handler.connections] == [1] * 5


def test_killed_worker_loses_nothing_and_resends_at_most_the_mail_in_flight(workers, people):
    handler = RecordingHandler(data_delay=0.005)
    with smtp_server(handler) as server:
        configure(port=server.port, group_sends=True)
        queue(people.acme, 500)
        first = workers.start()
        while len(handler.messages) < 100:
            time.sleep(0.05)
        workers.kill(first)
        workers.start()
        wait_until_final(500)
    arrived = message_ids(handler)
    assert set(arrived) == all_message_ids()
    twice = [mid for mid, count in arrived.items() if count > 1]
    assert len(twice) <= 1 and max(arrived.values()) <= 2


def test_mail_survives_a_flushed_redis(workers, people):
    with smtp_server() as server:
        configure(port=server.port, group_sends=True)
        queue(people.acme, 20)
        redis_client.connection().flushdb()  # the hand-offs and the scheduled flush are gone
        workers.start()
        wait_until_final(20)
    assert set(message_ids(server.handler)) == all_message_ids()


def test_two_workers_deliver_every_mail_exactly_once(workers, people):
    with smtp_server() as server:
        configure(port=server.port)
        queue(people.acme, 1000)
        workers.start()
        workers.start()
        wait_until_final(1000)
    arrived = message_ids(server.handler)
    assert set(arrived) == all_message_ids() and set(arrived.values()) == {1}


def test_oauth_mail_waits_for_reauthorization_then_goes_out(
    workers, people, connected, provider, smtp, certs
):
    """Two worker processes: one token refresh between them, then invalid_grant, then consent."""
    workers.env["MAIL_CA_FILE"] = str(certs.ca)
    db.session.execute(update(OAuthGrant).values(access_expires_at=utcnow()))
    db.session.commit()
    provider.refresh_delay = 0.3  # strict rotation: a second refresh with the old token fails
    workers.start()
    workers.start()
    queue(people.acme, 20)
    wait_until_final(20)
    assert provider.refresh_count == 1 and len(message_ids(smtp.handler)) == 20

    provider.revoke_all()
    provider.expire_access_tokens()
    db.session.execute(update(OAuthGrant).values(access_expires_at=utcnow()))
    db.session.commit()
    waiting = queue(people.acme, 3)
    deadline = time.monotonic() + WAIT_SECONDS
    while {row(m).status for m in waiting} != {"deferred"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(row(m).last_reply.startswith("Re-authorization needed") for m in waiting)
    assert consent(connected, provider).status_code == 303
    wait_until_final(23)
    assert set(message_ids(smtp.handler)) == all_message_ids()
