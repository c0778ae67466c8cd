"""The queue dashboard's figures from the database: mail per company and server, sent per minute.

Each figure is one GROUP BY over the outbox: the open mail and the last hour's sent mail by
(company, lane, status), and the last hour's sent mail by minute. Servers are named from the
settings in force, by the lane key each configuration makes, and never with a credential.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select

from portal.extensions import db
from portal.models import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    Company,
    DeliverySession,
    MailConfig,
    OutboxMessage,
    as_utc,
    utcnow,
)
from portal.settings.resolution import merge, session_key

WINDOW_MINUTES = 60  # the chart's bars, and how far back "sent" counts
OPEN_STATUSES = (STATUS_QUEUED, STATUS_SENDING, STATUS_DEFERRED, STATUS_FAILED)
# What the screens call them: lazy, so each page shows them in its own language.
GLOBAL_SETTINGS = _l("Global settings")
GLOBAL = _l("Global")  # the mail of no company


@dataclass
class Counts:
    """Mails of one company or server by state; `sent` only those sent in the chart's hour."""

    queued: int = 0
    sending: int = 0
    deferred: int = 0
    failed: int = 0
    sent: int = 0
    oldest_queued: datetime | None = None

    def add(self, status: str, count: int, oldest: datetime | None) -> None:
        setattr(self, status, getattr(self, status) + count)
        if status == STATUS_QUEUED and oldest is not None:
            oldest = as_utc(oldest)
            if self.oldest_queued is None or oldest < self.oldest_queued:
                self.oldest_queued = oldest


@dataclass(frozen=True)
class Server:
    """A lane's destination as the screens name it: host:port and whose settings make it."""

    label: str
    settings_of: str
    cap: int | None = None  # parallel connections; None for a lane no settings make now
    known: bool = True


UNASSIGNED = Server(_l("not assigned yet"), "—", known=False)  # queued before lanes existed
EARLIER = Server(_l("earlier settings"), "—", known=False)  # settings changed since it was queued


@dataclass
class CompanyRow:
    company_id: int | None  # None: mail of no company (the global settings)
    name: str
    counts: Counts = field(default_factory=Counts)


@dataclass
class ServerRow:
    lane: str | None
    server: Server
    counts: Counts = field(default_factory=Counts)
    sessions: int = 0  # live SMTP sessions the workers hold to it


@dataclass(frozen=True)
class LiveSession:
    server: Server
    worker: str  # host:pid-namespace:pid
    started_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Minute:
    start: datetime
    sent: int


@dataclass
class Overview:
    at: datetime
    since: datetime  # the chart's first minute; `sent` counts from here
    totals: Counts
    companies: list[CompanyRow]
    servers: list[ServerRow]
    minutes: list[Minute]
    sessions: list[LiveSession]


def servers() -> dict[str, Server]:
    """Every lane the saved settings make now, by its key: the global one first.

    A company that uses its own settings has its own lane; all others share the global one.
    """
    query = (
        select(MailConfig, Company.name)
        .outerjoin(Company, MailConfig.company_id == Company.id)
        .where(or_(MailConfig.company_id.is_(None), Company.use_own_mail_settings.is_(True)))
    )
    rows = db.session.execute(query).all()
    glob = next((config for config, _ in rows if config.company_id is None), None)
    own_rows = [(config, name) for config, name in rows if config.company_id is not None]
    named: dict[str, Server] = {}  # in order: the global lane first
    for own, name in [(None, GLOBAL_SETTINGS), *own_rows]:
        settings = merge(own.company_id if own else None, glob, own)
        label = f"{settings.host}:{settings.port}" if settings.host else _l("no server set")
        named.setdefault(session_key(settings), Server(label, name, settings.max_sessions))
    return named


def server_of(lane: str | None, known: dict[str, Server]) -> Server:
    if lane is None:
        return UNASSIGNED
    return known.get(lane, EARLIER)


def _counts(since: datetime) -> list[tuple[int | None, str | None, str, int, datetime | None]]:
    """Open mail and mail sent since `since`, by company, lane and status."""
    message = OutboxMessage
    recent = and_(message.status == STATUS_SENT, message.sent_at >= since)
    query = (
        select(
            message.company_id,
            message.lane,
            message.status,
            func.count(),
            func.min(message.created_at),
        )
        .where(or_(message.status.in_(OPEN_STATUSES), recent))
        .group_by(message.company_id, message.lane, message.status)
    )
    return [tuple(row) for row in db.session.execute(query)]  # type: ignore[misc]


def _minute(column):
    """The column truncated to its minute, in the database's own words."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", column)
    return func.strftime("%Y-%m-%d %H:%M", column)


def _as_minute(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's strftime
        return datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    return as_utc(value)


def sent_per_minute(since: datetime) -> list[Minute]:
    """Mails sent in each of the WINDOW_MINUTES minutes from `since` (a whole minute), in order."""
    bucket = _minute(OutboxMessage.sent_at).label("minute")
    query = (
        select(bucket, func.count())
        .where(OutboxMessage.status == STATUS_SENT, OutboxMessage.sent_at >= since)
        .group_by(bucket)
    )
    sent = {_as_minute(minute): count for minute, count in db.session.execute(query)}
    starts = (since + timedelta(minutes=i) for i in range(WINDOW_MINUTES))
    return [Minute(start, sent.get(start, 0)) for start in starts]


def _sessions(now: datetime, known: dict[str, Server]) -> list[tuple[str, LiveSession]]:
    query = (
        select(
            DeliverySession.lane,
            DeliverySession.worker,
            DeliverySession.started_at,
            DeliverySession.expires_at,
        )
        .where(DeliverySession.expires_at >= now)
        .order_by(DeliverySession.started_at)
    )
    return [
        (lane, LiveSession(server_of(lane, known), worker, as_utc(started), as_utc(expires)))
        for lane, worker, started, expires in db.session.execute(query)
    ]


def _company_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    query = select(Company.id, Company.name).where(Company.id.in_(sorted(ids)))
    return {company_id: name for company_id, name in db.session.execute(query)}


def overview(now: datetime | None = None) -> Overview:
    """Everything the dashboard shows that the database knows. Reads only; does not commit."""
    now = now or utcnow()
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=WINDOW_MINUTES - 1)
    known = servers()
    totals = Counts()
    companies: dict[int | None, CompanyRow] = {}
    lanes: dict[str | None, ServerRow] = {}
    rows = _counts(since)
    names = _company_names({company_id for company_id, *_ in rows if company_id is not None})
    for company_id, lane, status, count, oldest in rows:
        name = names.get(company_id, GLOBAL) if company_id is not None else GLOBAL
        companies.setdefault(company_id, CompanyRow(company_id, name)).counts.add(
            status, count, oldest
        )
        lanes.setdefault(lane, ServerRow(lane, server_of(lane, known))).counts.add(
            status, count, oldest
        )
        totals.add(status, count, oldest)
    sessions = _sessions(now, known)
    for lane, _ in sessions:
        lanes.setdefault(lane, ServerRow(lane, server_of(lane, known))).sessions += 1
    return Overview(
        at=now,
        since=since,
        totals=totals,
        companies=sorted(companies.values(), key=lambda r: (r.company_id is not None, str(r.name))),
        servers=sorted(lanes.values(), key=lambda r: (not r.server.known, str(r.server.label))),
        minutes=sent_per_minute(since),
        sessions=[session for _, session in sessions],
    )
