"""Claimed mails' leases on one clock, the database's: the clock every host's sweeper reads."""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.sql import ColumnElement

from portal.extensions import db
from portal.models import STATUS_SENDING, OutboxMessage, Timestamp, utcnow

OUTBOX = OutboxMessage.__table__


def now() -> ColumnElement | datetime:
    """The database's time for a statement: PostgreSQL's own, or this host's for SQLite.

    A lease set by one host and expired by another's sweeper must not depend on their clocks
    agreeing. SQLite is a file on this host, so its users all read this host's clock.
    """
    if db.engine.dialect.name == "postgresql":
        # The statement's start, not the transaction's (now()): never later than the moment
        # the caller measured before sending it, so a lease is never thought longer than it is.
        return func.statement_timestamp(type_=Timestamp)
    return utcnow()


def after(seconds: float) -> ColumnElement | datetime:
    """The database's time `seconds` from now, for a statement (a lease's end)."""
    return now() + timedelta(seconds=seconds)


def unlocked(where: Callable[[Table], list]) -> ColumnElement:
    """The outbox rows matching `where` that no other transaction holds locked right now.

    For the heartbeat and the sweep: neither waits for a row lock, so neither closes a
    deadlock cycle with a session committing its outcomes (PostgreSQL would abort one of
    them, and an aborted commit of outcomes means mails sent again). A locked row is being
    recorded or extended this instant: the next beat or sweep sees it as it ends up.
    """
    row = OUTBOX.alias("unlocked")  # not the UPDATE's own table: no correlation
    ids = select(row.c.id).where(*where(row)).with_for_update(skip_locked=True)
    return and_(OUTBOX.c.id.in_(ids), *where(OUTBOX))


def hold(token: str, ids: Sequence[int], lease_seconds: float) -> set[int]:
    """Of these mails, those still claimed under `token`, their leases extended (commits).

    The check and the extension are one statement: a mail returned is this claim's for
    `lease_seconds` from the statement's start, whatever the sweeper or another worker does.
    """
    if not ids:
        return set()
    result = db.session.execute(
        update(OUTBOX)
        .where(
            OUTBOX.c.id.in_(ids),
            OUTBOX.c.claim_token == token,
            OUTBOX.c.status == STATUS_SENDING,
        )
        .values(lease_until=after(lease_seconds))
        .returning(OUTBOX.c.id)
    )
    kept = set(result.scalars())
    db.session.commit()
    return kept
