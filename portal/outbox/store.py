"""The outbox table's state changes: atomic claims, per-mail outcomes, leases and the sweep."""

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update

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
from portal.outbox import handoff, leases
from portal.tenancy import served_by

OUTBOX = OutboxMessage.__table__  # Core statements: no ORM bookkeeping on the send path
Row = Any  # a Row of the columns in DELIVERY_COLUMNS
DELIVERY_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.company_id,
    OutboxMessage.group_key,
    OutboxMessage.lane,
    OutboxMessage.envelope_from,
    OutboxMessage.recipients,
    OutboxMessage.recipient_results,
    OutboxMessage.raw,
    OutboxMessage.sealed_raw,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
)


def _due(now: datetime, table=OUTBOX):
    """Queued, or deferred and due by `now`, for rows of `table` (the outbox or an alias of it)."""
    # The IN comes first so that an index on (lane, status) finds the rows: no scan of sent mail.
    waiting = table.c.status.in_((STATUS_QUEUED, STATUS_DEFERRED))
    due = or_(table.c.status == STATUS_QUEUED, table.c.next_attempt_at <= now)
    return and_(waiting, due)


def claim(
    token: str,
    lane: str | None,
    *,
    limit: int,
    lease_seconds: float,
    ids: Sequence[int] = (),
) -> list[int]:
    """Mark due mails of a lane as sending under `token` and a lease, atomically (commits).

    Companies take turns: each company's oldest mail first, then each one's second, and so on,
    so one company's backlog never holds another's mail back in a shared lane.
    Returns the ids this caller got, oldest first; `lane` None takes mail queued before lanes.
    """
    now = utcnow()
    in_lane = OutboxMessage.lane.is_(None) if lane is None else OutboxMessage.lane == lane
    turn = func.row_number().over(partition_by=OutboxMessage.company_id, order_by=OutboxMessage.id)
    ranked = select(OutboxMessage.id, turn.label("turn")).where(in_lane, _due(now))
    if ids:
        ranked = ranked.where(OutboxMessage.id.in_(ids))
    ranked = ranked.subquery()
    candidates = select(ranked.c.id).order_by(ranked.c.turn, ranked.c.id)
    if db.engine.dialect.name == "postgresql":
        # Sessions of one lane claim side by side: each takes the fair candidates the others
        # have not locked, instead of waiting for their rows and then finding them taken.
        fair = select(ranked.c.id, ranked.c.turn).order_by(ranked.c.turn, ranked.c.id)
        fair = fair.limit(limit * 2).subquery()
        row = OUTBOX.alias("candidate")  # not the UPDATE's own table: no correlation
        candidates = (
            select(row.c.id)
            .join(fair, fair.c.id == row.c.id)
            .where(_due(now, row))
            .order_by(fair.c.turn, fair.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=row)
        )
    else:
        candidates = candidates.limit(limit)
    # Chosen once (a CTE): a subquery with LIMIT under IN may be run again by the planner.
    chosen = candidates.cte("chosen")
    # The due test again on the row itself: a row another worker took meanwhile is skipped
    # (PostgreSQL re-checks it on the locked row), so no mail is ever claimed twice.
    statement = (
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(select(chosen.c.id)), _due(now))
        .values(
            status=STATUS_SENDING,
            attempts=OUTBOX.c.attempts + 1,
            claim_token=token,
            lease_until=leases.after(lease_seconds),
        )
        .returning(OUTBOX.c.id)
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


ATTEMPTS = OutboxAttempt.__table__


def record(token: str, outcomes: Sequence[tuple[int, str, dict]]) -> list[int]:
    """Write mails' outcomes and their attempts; the ids recorded. The caller commits, once.

    `outcomes` are (id, server, column values). Only the holder of a mail's current claim
    records it: an outcome from a session whose claim was lost (its lease ran out and another
    session took the mail) is dropped, not written over the newer one.
    A final outcome drops the sealed copy of a one-time-link mail: it is never sent again.
    """
    now = utcnow()
    rows = []
    for message_id, server, values in outcomes:
        if values["status"] in FINAL_STATUSES:
            values = {**values, "sealed_raw": None}
        rows.append((message_id, server, values))
    recorded: list[int] = []
    done_mark = "r" + token[1:]  # not hex: never a live claim's token
    # One executemany per set of columns. When its count falls short, some claim was lost:
    # the rows this session wrote carry its mark, and tell which.
    for columns, group in _by_columns(rows).items():
        ids = [i for i, _, _ in group]
        params = [
            {"b_id": i, "b_token": token, "b_done": done_mark, **_bound(v)} for i, _, v in group
        ]
        if db.session.execute(_fenced_update(columns), params).rowcount == len(group):
            recorded += ids
            continue
        mine = select(OUTBOX.c.id).where(OUTBOX.c.id.in_(ids), OUTBOX.c.claim_token == done_mark)
        recorded += list(db.session.scalars(mine))
    done = set(recorded)
    attempts = [
        {
            "message_id": message_id,
            "at": now,
            "server": server,
            "status": values["status"],
            "reply": values.get("last_reply"),
        }
        for message_id, server, values in rows
        if message_id in done
    ]
    if attempts:
        db.session.execute(insert(ATTEMPTS), attempts)
    return recorded


def _by_columns(rows: list[tuple[int, str, dict]]) -> dict[tuple[str, ...], list]:
    groups: dict[tuple[str, ...], list] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row[2])), []).append(row)
    return groups


def _bound(values: dict) -> dict:
    return {f"v_{name}": value for name, value in values.items()}


@lru_cache(maxsize=64)
def _fenced_update(columns: tuple[str, ...]):
    """UPDATE of these columns for one mail, only while it is claimed under the given token.

    The row keeps a mark of the session that recorded it instead of the token.
    """
    return (
        update(OUTBOX)
        .where(
            OUTBOX.c.id == bindparam("b_id"),
            OUTBOX.c.status == STATUS_SENDING,
            OUTBOX.c.claim_token == bindparam("b_token"),
        )
        .values({**{c: bindparam(f"v_{c}") for c in columns}, "claim_token": bindparam("b_done")})
    )


def forget(ids: Sequence[int]) -> None:
    """Delete sent mails at once ("delete immediately after sending"); attempts go with them."""
    if ids:
        db.session.execute(delete(ATTEMPTS).where(ATTEMPTS.c.message_id.in_(ids)))
        db.session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))


def renew_leases(tokens: Sequence[str], lease_seconds: float) -> None:
    """Keep the mails claimed under these tokens ours: the heartbeat of live sessions (commits).

    A lease only ever grows: a beat that waited (for the GIL, for a lock) never shortens the
    one a session has just extended before sending (leases.hold).
    """
    if tokens:
        until = leases.after(lease_seconds)
        renewed = leases.unlocked(
            lambda t: [
                t.c.claim_token.in_(tokens),
                t.c.status == STATUS_SENDING,
                t.c.lease_until < until,
            ]
        )
        db.session.execute(update(OUTBOX).where(renewed).values(lease_until=until))
    db.session.commit()


def release(token: str, ids: Sequence[int], lane: str | None = None) -> None:
    """Give claimed mails back to the queue untried, in `lane` (commits).

    For mails a session will not send: their settings now point elsewhere.
    """
    if ids:
        db.session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(ids), OUTBOX.c.claim_token == token)
            .values(
                status=STATUS_QUEUED,
                lease_until=None,
                claim_token=None,
                lane=lane,
                attempts=OUTBOX.c.attempts - 1,
            )
        )
    db.session.commit()


def release_claims(tokens: Sequence[str]) -> int:
    """Mails claimed by sessions known to be dead go back to the queue at once (commits)."""
    if not tokens:
        return 0
    result = db.session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.status == STATUS_SENDING, OUTBOX.c.claim_token.in_(tokens))
        .values(status=STATUS_QUEUED, lease_until=None, claim_token=None)
    )
    db.session.commit()
    return result.rowcount


def release_expired() -> int:
    """Mails whose worker died mid-send (lease run out) go back to the queue."""
    expired = leases.unlocked(
        lambda t: [t.c.status == STATUS_SENDING, t.c.lease_until < leases.now()]
    )
    result = db.session.execute(
        update(OUTBOX)
        .where(expired)
        .values(status=STATUS_QUEUED, lease_until=None, claim_token=None)
    )
    db.session.commit()
    return result.rowcount


def waiting(config: MailConfig) -> int:
    """How many deferred mails wait for this configuration."""
    query = select(func.count()).where(
        OutboxMessage.status == STATUS_DEFERRED, served_by(config, OutboxMessage.company_id)
    )
    return db.session.scalar(query) or 0


def wake(config: MailConfig) -> int:
    """Deferred mails of this configuration become due now and go to the worker (commits)."""
    query = select(OutboxMessage.id, OutboxMessage.lane).where(
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
    handoff.wake(row.lane for row in rows)
    return len(rows)
