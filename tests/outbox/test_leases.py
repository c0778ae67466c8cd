"""Claims' leases on the database's clock: checked and extended at once, never shortened."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from support.factories import configure, queue, row

from portal.extensions import db
from portal.models import OutboxMessage, as_utc, utcnow
from portal.outbox import leases, store

FIRST, SECOND = "a" * 32, "b" * 32


def claimed(people, server, lease_seconds: float) -> list[OutboxMessage]:
    """Two mails claimed under FIRST with this lease."""
    configure(port=server.port)
    messages = queue(people.acme, 2)
    ids = store.claim(FIRST, row(messages[0]).lane, limit=2, lease_seconds=lease_seconds)
    assert ids == [m.id for m in messages]
    return messages


def lease_left(message: OutboxMessage) -> timedelta:
    return as_utc(row(message).lease_until) - utcnow()


def test_a_claim_still_held_is_extended_by_the_check(app, people, server):
    messages = claimed(people, server, lease_seconds=1)
    ids = [m.id for m in messages]
    assert leases.hold(FIRST, ids, lease_seconds=600) == set(ids)
    assert all(lease_left(m) > timedelta(seconds=590) for m in messages)


def test_a_claim_the_sweep_gave_back_and_another_session_took_holds_nothing(app, people, server):
    messages = claimed(people, server, lease_seconds=0)
    ids = [m.id for m in messages]
    time.sleep(0.01)
    assert store.release_expired() == 2
    assert leases.hold(FIRST, ids, lease_seconds=600) == set()  # given back: not to be sent
    assert store.claim(SECOND, row(messages[0]).lane, limit=2, lease_seconds=600) == ids
    assert leases.hold(FIRST, ids, lease_seconds=600) == set()  # another session's now
    assert leases.hold(SECOND, ids, lease_seconds=600) == set(ids)


def test_a_late_heartbeat_never_shortens_a_lease(app, people, server):
    messages = claimed(people, server, lease_seconds=600)
    store.renew_leases([FIRST], lease_seconds=1)  # a beat that waited while the lease grew
    assert all(lease_left(m) > timedelta(seconds=590) for m in messages)


def test_a_beat_and_a_sweep_pass_over_a_row_a_session_is_recording(app, people, server):
    """A wait for that row lock could close a deadlock cycle with the session's commit."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite locks the whole database, never a row")
    recording, other = claimed(people, server, lease_seconds=0)
    with db.engine.connect() as session:
        outbox = OutboxMessage.__table__
        session.execute(update(outbox).where(outbox.c.id == recording.id).values(attempts=9))
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait fails, not hangs
        store.renew_leases([FIRST], lease_seconds=600)
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert store.release_expired() == 0  # the expired one is locked: left for next time
        session.rollback()
    assert lease_left(other) > timedelta(seconds=590)
    assert store.release_expired() == 1
    assert row(recording).status == "queued"
