"""Retention deletes exactly what is due; every attempt is recorded until then."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from support.factories import configure, queue, row
from support.forms import VALID
from support.smtp_servers import smtp_server

from portal import delivery
from portal.extensions import db
from portal.models import OutboxAttempt, OutboxMessage, utcnow
from portal.outbox import retention


def aged(message, status: str, days: int) -> None:
    stored = row(message)
    stored.status = status
    stored.created_at = utcnow() - timedelta(days=days)
    stored.sent_at = stored.created_at if status == "sent" else None
    db.session.add(OutboxAttempt(message_id=stored.id, server="x:25", status=status))
    db.session.commit()


def remaining() -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(select(OutboxMessage.subject)))


def test_purge_deletes_exactly_what_is_due(app, people, monkeypatch):
    configure(port=2525, retention_days=30)
    old_sent, new_sent, old_failed, new_failed, old_unknown, old_deferred = queue(people.acme, 6)
    aged(old_sent, "sent", 31)
    aged(new_sent, "sent", 29)
    aged(old_failed, "failed", 31)  # failed mail is kept at least 30 days too
    aged(new_failed, "failed", 29)
    aged(old_unknown, "unknown", 45)
    aged(old_deferred, "deferred", 45)  # still being retried: never purged
    monkeypatch.setattr(retention, "BATCH", 1)  # several short transactions
    old_sent_id = old_sent.id
    assert retention.purge() == 3
    assert remaining() == {"Hello 1", "Hello 3", "Hello 5"}
    attempts = select(OutboxAttempt.id).where(OutboxAttempt.message_id == old_sent_id)
    assert db.session.scalar(attempts) is None


def test_failed_mail_outlives_a_short_retention(app, people):
    configure(port=2525, retention_days=1)
    sent, failed = queue(people.acme, 2)
    aged(sent, "sent", 2)
    aged(failed, "failed", 2)
    assert retention.purge() == 1
    assert remaining() == {"Hello 1"}


def test_zero_days_deletes_mail_right_after_sending(app, people):
    with smtp_server() as server:
        configure(port=server.port, retention_days=0)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    assert len(server.handler.messages) == 1
    assert remaining() == set()


def test_each_attempt_is_recorded(app, people):
    with smtp_server() as server:
        configure(port=server.port)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    (attempt,) = row(message).attempts_made
    assert (attempt.server, attempt.status) == (f"127.0.0.1:{server.port}", "sent")
    assert "queued as" in attempt.reply


@pytest.mark.parametrize(
    ("value", "ok"), [("-1", False), ("0", True), ("3650", True), ("3651", False)]
)
def test_retention_setting_bounds(as_superuser, value, ok):
    response = as_superuser.post("/settings/mail", {**VALID, "retention_days": value}, htmx=True)
    assert response.status_code == (200 if ok else 422)
    assert ("Enter a whole number from 0 to 3650." in response.text) is not ok
