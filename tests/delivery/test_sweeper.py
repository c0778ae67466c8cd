"""The elected sweeper: one holder at a time, what it sweeps and purges, and its takeover."""

import signal
import time

import pytest
from sqlalchemy import select
from support.factories import configure, queue, row
from support.hosts import end, host_env, portal_command, spawn, wait_for_sweeper

from portal import redis_client
from portal.delivery import lanes, sweeper
from portal.delivery.sweeper import PURGED_KEY, Sweeper
from portal.extensions import db
from portal.models import OutboxMessage, utcnow
from portal.outbox import store

TAKEOVER_MARGIN_SECONDS = 10  # a bound for a broken build, not a speed target


@pytest.fixture
def sweepers(app):
    """Sweeper(app) in this process, each resigned after the test so the next one can win."""
    made: list[Sweeper] = []

    def make() -> Sweeper:
        made.append(Sweeper(app))
        return made[-1]

    yield make
    for each in made:
        each.stop()
        each.resign()


def expired_claims(people, server, n: int) -> list[OutboxMessage]:
    """n mails claimed by a session whose lease has already run out."""
    configure(port=server.port)
    messages = queue(people.acme, n)
    lane = row(messages[0]).lane
    assert store.claim("a" * 32, lane, limit=n, lease_seconds=0) == [m.id for m in messages]
    time.sleep(0.01)
    return messages


def subjects() -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(select(OutboxMessage.subject)))


def test_only_one_sweeper_holds_the_election_until_it_resigns(sweepers):
    first, second = sweepers(), sweepers()
    assert first.round()
    assert not second.round()
    assert first.round()  # still held
    first.resign()
    assert second.round()
    assert not first.round()


def test_the_holder_requeues_mail_whose_lease_ran_out_and_records_its_round(
    sweepers, people, server
):
    messages = expired_claims(people, server, 2)
    before = time.time()
    assert sweepers().round()
    assert {row(m).status for m in messages} == {"queued"}
    record = redis_client.connection().hgetall(sweeper.SWEEPER_KEY)
    assert record[b"host"].decode() == lanes.worker_name()
    assert record[b"released"] == b"2"
    assert before <= float(record[b"at"]) <= time.time()


def test_a_process_that_does_not_hold_the_election_sweeps_nothing(sweepers, people, server):
    holder, other = sweepers(), sweepers()
    assert holder.round()
    messages = expired_claims(people, server, 1)
    assert not other.round()
    assert row(messages[0]).status == "sending"
    assert redis_client.connection().hget(sweeper.SWEEPER_KEY, "released") == b"0"


def test_a_takeover_does_not_purge_again_before_the_retention_period_is_over(sweepers, people, app):
    configure(port=2525, retention_days=30)
    first, second = queue(people.acme, 2)

    def age(message) -> None:
        stored = row(message)
        stored.status, stored.sent_at = "sent", utcnow().replace(year=2000)
        db.session.commit()

    age(first)
    holder, successor = sweepers(), sweepers()
    assert holder.round()
    assert subjects() == {"Hello 1"}
    age(second)
    holder.resign()
    assert successor.round()
    assert subjects() == {"Hello 1"}  # purged by the holder before, less than a period ago
    period = app.config["MAIL_RETENTION_EVERY_SECONDS"]
    redis_client.connection().set(PURGED_KEY, repr(time.time() - period - 1))
    assert successor.round()
    assert subjects() == set()


def test_a_failing_round_is_logged_and_the_sweeper_goes_on(
    app, sweepers, people, server, caplog, monkeypatch
):
    app.config["MAIL_SWEEP_SECONDS"] = 0.05
    real, calls = store.release_expired, []

    def fails_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected: the database went away")
        return real()

    monkeypatch.setattr(store, "release_expired", fails_once)
    running = sweepers()
    thread = running.start()
    wait_for_sweeper(lambda record: len(calls) > 1, "a round after the failed one")
    running.stop()
    thread.join(timeout=30)
    assert "sweeper failed; starting it again" in caplog.text
    assert "injected: the database went away" in caplog.text


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_when_portal_sweeper_ends_another_process_takes_over_within_a_sweep_interval(
    app_config, sweepers, tmp_path, sig
):
    env = host_env(app_config, tmp_path / "instance", MAIL_SWEEP_SECONDS="1")
    process = spawn(portal_command("sweeper"), env, tmp_path / "sweeper.log")
    try:
        wait_for_sweeper(
            lambda record: record["host"].endswith(f":{process.pid}"), "portal sweeper to sweep"
        )
        successor = sweepers()
        assert not successor.round()
    finally:
        code = end(process, sig)
    if sig == signal.SIGTERM:
        assert code == 0  # a clean stop
    deadline = time.monotonic() + 1 + TAKEOVER_MARGIN_SECONDS
    while not successor.round():
        assert time.monotonic() < deadline, "nobody took the election over"
        time.sleep(0.1)
    assert redis_client.connection().hget(sweeper.SWEEPER_KEY, "host").decode() == (
        lanes.worker_name()
    )
