"""A batch in this process against a real SMTP server: it sends only mail its claim still holds."""

import time
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from support.factories import configure, queue, row

from portal.delivery.batch import Batch
from portal.delivery.signing import signing_scope
from portal.extensions import db
from portal.models import STATUS_SENDING, STATUS_SENT, OutboxMessage, utcnow
from portal.outbox import store
from portal.settings.versioned import resolve_current

FIRST, SECOND = "a" * 32, "b" * 32
LONG = 600  # seconds: a lease that does not run out during the test


def batch(company, token: str) -> Batch:
    settings = resolve_current(company).settings
    return Batch(settings, token, {company.id: signing_scope(settings)})


def lease_ran_out() -> None:
    db.session.execute(update(OutboxMessage).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_a_claim_lost_while_the_session_was_starved_sends_nothing(app, people, server):
    configure(port=server.port)
    mails = queue(people.acme, 3)
    lane = row(mails[0]).lane
    rows = store.load(store.claim(FIRST, lane, limit=3, lease_seconds=LONG))
    claimed_at = time.monotonic() - LONG  # as if the session had stood still for a lease
    lease_ran_out()
    assert store.release_expired() == 3
    assert store.claim(SECOND, lane, limit=3, lease_seconds=LONG) == [m.id for m in mails]

    late = batch(people.acme, FIRST)
    late.send(rows, claimed_at + LONG)
    late.close()
    assert server.handler.messages == []
    assert {(row(m).status, row(m).claim_token) for m in mails} == {(STATUS_SENDING, SECOND)}


def test_a_mail_given_back_and_claimed_again_by_its_session_is_not_sent_again(app, people, server):
    app.config.update(MAIL_COMMIT_EVERY=100, MAIL_COMMIT_SECONDS=LONG)  # its outcome waits
    configure(port=server.port)
    (mail,) = queue(people.acme)
    lane = row(mail).lane
    session = batch(people.acme, FIRST)
    first = store.claim(FIRST, lane, limit=1, lease_seconds=LONG)
    session.send(store.load(first), time.monotonic() + LONG)
    lease_ran_out()  # the 250 came, then the worker stood still before committing it
    assert store.release_expired() == 1
    again = store.claim(FIRST, lane, limit=1, lease_seconds=LONG)
    session.send(store.load(again), time.monotonic() + LONG)
    session.close()
    assert len(server.handler.messages) == 1
    assert row(mail).status == STATUS_SENT


def test_outcomes_whose_commit_was_aborted_once_are_committed_at_the_second_try(
    app, people, server, monkeypatch
):
    configure(port=server.port)
    (mail,) = queue(people.acme)
    real, calls = store.record, []

    def aborted_once(token, outcomes):
        calls.append(token)
        if len(calls) == 1:
            raise OperationalError("UPDATE outbox_messages", {}, Exception("deadlock detected"))
        return real(token, outcomes)

    monkeypatch.setattr(store, "record", aborted_once)
    session = batch(people.acme, FIRST)
    claimed = store.claim(FIRST, row(mail).lane, limit=1, lease_seconds=LONG)
    session.send(store.load(claimed), time.monotonic() + LONG)
    session.close()
    assert len(calls) == 2 and len(server.handler.messages) == 1
    assert row(mail).status == STATUS_SENT
