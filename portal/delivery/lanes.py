"""Lanes: due mail per SMTP destination, and the sessions the workers hold to each (the cap)."""

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, update

from portal.extensions import db
from portal.models import (
    STATUS_DEFERRED,
    STATUS_QUEUED,
    Company,
    DeliverySession,
    OutboxMessage,
    as_utc,
    utcnow,
)
from portal.settings.resolution import DEFAULT_MAX_SESSIONS
from portal.settings.versioned import resolve_current

SESSIONS = DeliverySession.__table__


@dataclass(frozen=True)
class Lane:
    """A destination with due mail: its key (None: mail to lane anew) and how much is due."""

    key: str | None
    due: int


@dataclass(frozen=True)
class Scan:
    lanes: list[Lane]
    next_due: datetime | None  # when more mail becomes due (a retry, a grouping window)


def scan(now: datetime, window_seconds: float, group_max: int) -> Scan:
    """The lanes with mail due now, most due first; grouped mail is due a window after its first."""
    due: dict[str | None, int] = {}
    later: list[datetime] = []
    grouped = OutboxMessage.group_key.is_not(None)
    queued = (
        select(OutboxMessage.lane, grouped, func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status == STATUS_QUEUED)
        .group_by(OutboxMessage.lane, grouped)
    )
    for lane, is_grouped, count, oldest in db.session.execute(queued):
        ready = as_utc(oldest) + timedelta(seconds=window_seconds)
        if is_grouped and ready > now and count < group_max:
            later.append(ready)
        else:
            due[lane] = due.get(lane, 0) + count
    retries = (
        select(OutboxMessage.lane, func.count())
        .where(OutboxMessage.status == STATUS_DEFERRED, OutboxMessage.next_attempt_at <= now)
        .group_by(OutboxMessage.lane)
    )
    for lane, count in db.session.execute(retries):
        due[lane] = due.get(lane, 0) + count
    upcoming = db.session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == STATUS_DEFERRED, OutboxMessage.next_attempt_at > now
        )
    )
    if upcoming is not None:
        later.append(as_utc(upcoming))
    db.session.commit()
    lanes = sorted((Lane(k, n) for k, n in due.items()), key=lambda lane: -lane.due)
    return Scan(lanes, min(later) if later else None)


def open_session(token: str, lane: str, cap: int, worker: str, ttl_seconds: float) -> bool:
    """Take one of the lane's `cap` session places for `token`, if one is free (commits).

    A place whose heartbeat stopped (its worker died) is free again once it expires.
    """
    now = utcnow()
    if db.engine.dialect.name == "postgresql":
        # Count and insert as one step per lane: two workers never both take the last place.
        db.session.execute(select(func.pg_advisory_xact_lock(func.hashtext(lane))))
    db.session.execute(delete(SESSIONS).where(SESSIONS.c.lane == lane, SESSIONS.c.expires_at < now))
    others = SESSIONS.alias("held")  # not correlated with the INSERT's own table
    held = select(func.count()).select_from(others).where(others.c.lane == lane).scalar_subquery()
    values = select(
        literal(token),
        literal(lane),
        literal(worker),
        literal(now),
        literal(now + timedelta(seconds=ttl_seconds)),
    ).where(held < cap)
    result = db.session.execute(
        insert(SESSIONS)
        .from_select(["token", "lane", "worker", "started_at", "expires_at"], values)
        .returning(SESSIONS.c.token)
    )
    placed = result.first() is not None
    db.session.commit()
    return placed


def renew_sessions(tokens: list[str], ttl_seconds: float) -> None:
    """The heartbeat: these sessions are alive (the caller commits)."""
    if tokens:
        db.session.execute(
            update(SESSIONS)
            .where(SESSIONS.c.token.in_(tokens))
            .values(expires_at=utcnow() + timedelta(seconds=ttl_seconds))
        )


def close_session(token: str) -> None:
    """Free the session's place in its lane (commits)."""
    db.session.execute(delete(SESSIONS).where(SESSIONS.c.token == token))
    db.session.commit()


def dead_here(me: str) -> list[str]:
    """Tokens of sessions held by processes of this host and pid namespace that have died.

    `me` is this process's worker name, host:namespace:pid. Their places and claims need not
    wait for the lease: a dead process sends nothing more.
    """
    prefix = me.rpartition(":")[0] + ":"
    found = db.session.execute(
        select(SESSIONS.c.token, SESSIONS.c.worker).where(SESSIONS.c.worker.startswith(prefix))
    ).all()
    db.session.commit()
    return [token for token, worker in found if not _alive(worker.rpartition(":")[2])]


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True  # not ours to signal, or not a pid: assume alive, the lease decides
    return True


def worker_name() -> str:
    """This process as the sessions table names it: host, pid namespace and pid."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}:{namespace}:{os.getpid()}"


def cap_of(lane: str) -> int:
    """The lane's parallel connections, from the settings in force for one of its mails."""
    company_id = db.session.scalar(
        select(OutboxMessage.company_id).where(OutboxMessage.lane == lane).limit(1)
    )
    company = db.session.get(Company, company_id) if company_id is not None else None
    cap = resolve_current(company).settings.max_sessions
    db.session.commit()
    return cap or DEFAULT_MAX_SESSIONS


def held(lane: str) -> int:
    """How many live sessions the workers hold to a lane."""
    query = select(func.count()).where(SESSIONS.c.lane == lane, SESSIONS.c.expires_at >= utcnow())
    return db.session.scalar(query) or 0
