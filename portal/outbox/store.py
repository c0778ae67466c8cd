"""The outbox table's state changes: atomic claims, per-mail outcomes, leases and the sweep."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, insert, or_, select, update

from portal import crypto
from portal.extensions import db
from portal.models import (
    FINAL_STATUSES,
    STATUS_DEFERRED,
    STATUS_QUEUED,
    STATUS_SENDING,
    MailConfig,
    OutboxAttempt,
    OutboxMessage,
    utcnow,
)
from portal.outbox import handoff
from portal.tenancy import served_by

Row = Any  # a Row of the columns in DELIVERY_COLUMNS
DELIVERY_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.company_id,
    OutboxMessage.group_key,
    OutboxMessage.envelope_from,
    OutboxMessage.recipients,
    OutboxMessage.recipient_results,
    OutboxMessage.raw,
    OutboxMessage.sealed_raw,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
)


def _due(now: datetime):
    waiting = and_(OutboxMessage.status == STATUS_DEFERRED, OutboxMessage.next_attempt_at <= now)
    return or_(OutboxMessage.status == STATUS_QUEUED, waiting)


def claim(*, ids: Sequence[int] = (), group_key: str | None = None, limit: int = 1) -> list[int]:
    """Mark due mails as sending under a lease, atomically; return the ids this caller got."""
    now = utcnow()
    candidates = select(OutboxMessage.id).where(_due(now))
    if ids:
        candidates = candidates.where(OutboxMessage.id.in_(ids))
    if group_key is not None:
        candidates = candidates.where(OutboxMessage.group_key == group_key)
    candidates = candidates.order_by(OutboxMessage.id).limit(limit)
    if db.engine.dialect.name == "postgresql":
        # Two workers never take the same row, and neither waits for the other's rows.
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(candidates.scalar_subquery()))
        .values(
            status=STATUS_SENDING,
            attempts=OutboxMessage.attempts + 1,
            lease_until=now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"]),
        )
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    claimed = sorted(db.session.execute(statement).scalars())
    db.session.commit()
    return claimed


def load(ids: Sequence[int]) -> list[Row]:
    query = select(*DELIVERY_COLUMNS).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
    return list(db.session.execute(query))


def message_bytes(row: Row) -> bytes:
    """The mail to send: a one-time-link mail's sealed original, any other mail's raw bytes.

    Raises SecretError when the configured keys cannot open the sealed mail.
    """
    return crypto.decrypt_bytes(row.sealed_raw) if row.sealed_raw is not None else row.raw


OUTBOX = OutboxMessage.__table__  # Core statements: no ORM bookkeeping on the send path


ATTEMPTS = OutboxAttempt.__table__


def record(message_id: int, server: str, **values) -> None:
    """Write one mail's outcome and its attempt; the caller commits (before the next mail).

    A final outcome drops the sealed copy of a one-time-link mail: it is never sent again.
    """
    if values["status"] in FINAL_STATUSES:
        values["sealed_raw"] = None
    db.session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == message_id, OUTBOX.c.status == STATUS_SENDING)
        .values(**values)
    )
    db.session.execute(
        insert(ATTEMPTS).values(
            message_id=message_id,
            at=utcnow(),
            server=server,
            status=values["status"],
            reply=values.get("last_reply"),
        )
    )


def forget(message_id: int) -> None:
    """Delete a sent mail at once ("delete immediately after sending"); attempts go with it."""
    db.session.execute(delete(ATTEMPTS).where(ATTEMPTS.c.message_id == message_id))
    db.session.execute(delete(OUTBOX).where(OUTBOX.c.id == message_id))


def renew_lease(ids: Iterable[int]) -> None:
    """Keep claimed mails ours while a long group is still being sent."""
    ids = list(ids)
    if ids:
        until = utcnow() + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
        record_many(ids, lease_until=until)


def record_many(ids: Sequence[int], **values) -> None:
    db.session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == STATUS_SENDING)
        .values(**values)
    )


def release_expired() -> int:
    """Mails whose worker died mid-send (lease run out) go back to the queue."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == STATUS_SENDING, OutboxMessage.lease_until < utcnow())
        .values(status=STATUS_QUEUED, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount


def stranded(limit: int = 1000) -> list[tuple[int, str | None]]:
    """(id, group_key) of due mails that should have been picked up by now."""
    grace = timedelta(seconds=current_app.config["MAIL_HANDOFF_GRACE_SECONDS"])
    now = utcnow()
    late = or_(
        and_(OutboxMessage.status == STATUS_QUEUED, OutboxMessage.created_at <= now - grace),
        and_(
            OutboxMessage.status == STATUS_DEFERRED,
            OutboxMessage.next_attempt_at <= now - grace,
        ),
    )
    query = select(OutboxMessage.id, OutboxMessage.group_key).where(late)
    return [tuple(row) for row in db.session.execute(query.order_by(OutboxMessage.id).limit(limit))]


def waiting(config: MailConfig) -> int:
    """How many deferred mails wait for this configuration."""
    query = select(func.count()).where(
        OutboxMessage.status == STATUS_DEFERRED, served_by(config, OutboxMessage.company_id)
    )
    return db.session.scalar(query) or 0


def wake(config: MailConfig) -> int:
    """Deferred mails of this configuration become due now and go to the worker (commits)."""
    query = select(OutboxMessage.id, OutboxMessage.group_key).where(
        OutboxMessage.status == STATUS_DEFERRED, served_by(config, OutboxMessage.company_id)
    )
    rows = list(db.session.execute(query))
    if rows:
        db.session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_([r.id for r in rows]), OUTBOX.c.status == STATUS_DEFERRED)
            .values(next_attempt_at=utcnow())
        )
    db.session.commit()
    handoff.hand_off_now(tuple(row) for row in rows)
    return len(rows)
