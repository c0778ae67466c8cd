"""Retention: delete mail that is due, in small batches, so the table is never locked for long."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, delete, or_, select

from portal.extensions import db
from portal.models import (
    STATUS_FAILED,
    STATUS_SENT,
    STATUS_UNKNOWN,
    OutboxAttempt,
    OutboxMessage,
    utcnow,
)
from portal.settings.resolution import resolve

BATCH = 1000
# Failed and unknown mails wait for a resend at least this long, whatever the setting.
MIN_FAILED_DAYS = 30
OUTBOX = OutboxMessage.__table__
ATTEMPTS = OutboxAttempt.__table__


def due_condition(now, keep_days: int):
    """Sent mail older than the retention; failed or unknown mail older than the longer of both."""
    sent_before = now - timedelta(days=keep_days)
    failed_before = now - timedelta(days=max(keep_days, MIN_FAILED_DAYS))
    return or_(
        and_(OUTBOX.c.status == STATUS_SENT, OUTBOX.c.sent_at < sent_before),
        and_(
            OUTBOX.c.status.in_((STATUS_FAILED, STATUS_UNKNOWN)),
            OUTBOX.c.created_at < failed_before,
        ),
    )


def purge() -> int:
    """Delete every mail due under the global retention, bodies and attempts included."""
    keep_days = resolve(None).retention_days
    condition = due_condition(utcnow(), keep_days)
    deleted = 0
    while True:
        ids = list(db.session.scalars(select(OUTBOX.c.id).where(condition).limit(BATCH)))
        if not ids:
            break
        db.session.execute(delete(ATTEMPTS).where(ATTEMPTS.c.message_id.in_(ids)))
        db.session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))
        db.session.commit()  # one short transaction per batch
        deleted += len(ids)
    if deleted:
        current_app.logger.info("retention: deleted %s mails", deleted)
    return deleted
