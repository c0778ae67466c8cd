"""The mail log's queries: filtered keyset pages, rows by id, one mail's detail, and resend."""

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email import policy
from email.parser import BytesParser
from email.utils import make_msgid
from typing import Any

from sqlalchemy import Text, cast, or_, select, tuple_, update

from portal import mime
from portal.extensions import db
from portal.models import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_UNKNOWN,
    OutboxAttempt,
    OutboxMessage,
    as_utc,
    utcnow,
)
from portal.tenancy import Scope, find, scoped

STATUSES = (
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_UNKNOWN,
)
DEFAULT_PAGE_SIZE = 50  # rows
Row = Any  # a Row of LIST_COLUMNS
# What a list row shows; never `raw`, which may be megabytes per row.
LIST_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.company_id,
    OutboxMessage.created_at,
    OutboxMessage.status,
    OutboxMessage.recipients,
    OutboxMessage.subject,
    OutboxMessage.attempts,
    OutboxMessage.last_reply,
    OutboxMessage.is_test,
    OutboxMessage.resend_of_id,
)
OUTBOX = OutboxMessage.__table__


class CursorError(ValueError):
    """A page cursor that this module did not make."""


@dataclass(frozen=True)
class LogFilter:
    scope: Scope
    status: str | None = None
    since: date | None = None  # first day shown, UTC
    until: date | None = None  # last day shown, UTC
    search: str = ""  # recipient or subject, case-insensitive substring
    lane: str | None = None  # one SMTP destination's mail (the queue dashboard's links)
    tests_only: bool = False  # the test mails queued from the mail settings screens


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None  # None: this is the oldest page


@dataclass
class Detail:
    message: OutboxMessage
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[mime.Attachment]
    attempts: list[OutboxAttempt]
    resends: list[Row] = field(default_factory=list)  # the copies made of it, oldest first


@dataclass
class ResendOutcome:
    handoffs: list[tuple[int, str | None]] = field(default_factory=list)  # after the commit
    untouched: list[int] = field(default_factory=list)  # still queued or sending
    one_time_links: list[int] = field(default_factory=list)  # never sent again
    copies: list[tuple[int, int]] = field(default_factory=list)  # (original, its new copy)


def encode_cursor(created_at: datetime, message_id: int) -> str:
    """An opaque token for the position just after this row."""
    token = f"{as_utc(created_at).isoformat()}|{message_id}"
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        moment, _, message_id = text.partition("|")
        return as_utc(datetime.fromisoformat(moment)), int(message_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise CursorError(token) from exc


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(filters: LogFilter):
    query = scoped(select(*LIST_COLUMNS), OutboxMessage, filters.scope)
    if filters.status:
        query = query.where(OutboxMessage.status == filters.status)
    if filters.lane:
        query = query.where(OutboxMessage.lane == filters.lane)
    if filters.tests_only:
        query = query.where(OutboxMessage.is_test.is_(True))
    if filters.since:
        query = query.where(
            OutboxMessage.created_at >= datetime.combine(filters.since, time(), UTC)
        )
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time(), UTC)
        query = query.where(OutboxMessage.created_at < end)
    if filters.search:
        pattern = _like(filters.search)
        query = query.where(
            or_(
                OutboxMessage.subject.ilike(pattern, escape="\\"),
                cast(OutboxMessage.recipients, Text).ilike(pattern, escape="\\"),
            )
        )
    return query


def page_query(filters: LogFilter, cursor: str | None = None, size: int = DEFAULT_PAGE_SIZE):
    """The SELECT of one page (size + 1 rows, to know if an older page exists).

    Raises CursorError for a cursor this module did not make.
    """
    query = _filtered(filters)
    if cursor:
        moment, message_id = decode_cursor(cursor)
        # A row comparison: one index range on (…, created_at, id), whatever ties created_at has.
        position = tuple_(OutboxMessage.created_at, OutboxMessage.id)
        query = query.where(position < (moment, message_id))
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    return query.limit(size + 1)


def page(filters: LogFilter, cursor: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> Page:
    """Newest first, `size` rows after the cursor; keyset on (created_at, id), never OFFSET.

    Raises CursorError for a cursor this module did not make.
    """
    rows = list(db.session.execute(page_query(filters, cursor, size)))
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page(rows, next_cursor)


def rows_query(ids: Iterable[int], scope: Scope):
    query = scoped(select(*LIST_COLUMNS), OutboxMessage, scope).where(
        OutboxMessage.id.in_(list(ids))
    )
    return query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())


def rows(ids: Iterable[int], scope: Scope) -> list[Row]:
    """These mails' list rows, newest first; ids outside the scope are left out."""
    return list(db.session.execute(rows_query(ids, scope)))


def _resends(message: OutboxMessage, scope: Scope) -> list[Row]:
    query = scoped(select(*LIST_COLUMNS), OutboxMessage, scope).where(
        OutboxMessage.resend_of_id == message.id
    )
    return list(db.session.execute(query.order_by(OutboxMessage.created_at, OutboxMessage.id)))


def detail(message_id: int, scope: Scope) -> Detail | None:
    """A mail as its recipients see it, its attempts and resends; None outside the scope."""
    message = find(OutboxMessage, message_id, scope)
    if message is None:
        return None
    parsed = mime.parse(message.raw)
    attempts = list(
        db.session.scalars(
            select(OutboxAttempt)
            .where(OutboxAttempt.message_id == message.id)
            .order_by(OutboxAttempt.at, OutboxAttempt.id)
        )
    )
    found = Detail(
        message, mime.headers(parsed), None, None, [], attempts, _resends(message, scope)
    )
    if not message.one_time_link:  # else only its headers are kept
        found.text, found.html = mime.text_body(parsed), mime.html_body(parsed)
        found.attachments = mime.attachments(parsed)
    return found


def with_new_message_id(raw: bytes, domain: str) -> tuple[bytes, str]:
    """The mail with a fresh Message-ID header: (raw bytes, the new id)."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    message_id = make_msgid(domain=domain or None)
    del parsed["Message-ID"]
    parsed["Message-ID"] = message_id
    return parsed.as_bytes(policy=policy.SMTP), message_id


def _copy(original: OutboxMessage) -> OutboxMessage:
    domain = original.envelope_from.rpartition("@")[2].lower()
    raw, message_id = with_new_message_id(original.raw, domain)
    return OutboxMessage(
        company_id=original.company_id,
        user_id=original.user_id,
        message_id=message_id,
        status=STATUS_QUEUED,
        group_key=original.group_key,
        lane=original.lane,
        envelope_from=original.envelope_from,
        recipients=list(original.recipients),
        subject=original.subject,
        raw=raw,
        size=len(raw),
        recipient_results={},
        resend_of_id=original.id,
    )


def _requeue(original: OutboxMessage) -> bool:
    """Queue a failed or deferred mail again, now, for the recipients not yet accepted."""
    results = {
        recipient: result
        for recipient, result in (original.recipient_results or {}).items()
        if result.get("status") == STATUS_SENT
    }
    # Only if no worker took it meanwhile: a claimed mail must not be queued twice.
    changed = db.session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == original.id, OUTBOX.c.status == original.status)
        .values(
            status=STATUS_QUEUED,
            next_attempt_at=None,
            lease_until=None,
            recipient_results=results,
            # A resend starts the give-up clock (MAIL_GIVE_UP_SECONDS) again.
            created_at=utcnow(),
        )
    )
    return changed.rowcount == 1


def resend(ids: Sequence[int], scope: Scope) -> ResendOutcome:
    """Sent or unknown mails: a new copy with a new Message-ID; failed or deferred: requeued.

    Queued and sending mails are left alone, and so are mails with a one-time link: their
    body is not kept, and a deferred one goes out at its next attempt. Ids outside the scope
    are ignored. The caller commits, then hands `handoffs` to the worker.
    """
    outcome = ResendOutcome()
    query = scoped(select(OutboxMessage), OutboxMessage, scope).where(
        OutboxMessage.id.in_(list(ids))
    )
    for original in db.session.scalars(query.order_by(OutboxMessage.id)):
        if original.one_time_link:
            outcome.one_time_links.append(original.id)
        elif original.status in (STATUS_SENT, STATUS_UNKNOWN):
            copy = _copy(original)
            db.session.add(copy)
            db.session.flush()
            outcome.handoffs.append((copy.id, copy.lane))
            outcome.copies.append((original.id, copy.id))
        elif original.status in (STATUS_FAILED, STATUS_DEFERRED) and _requeue(original):
            outcome.handoffs.append((original.id, original.lane))
        else:
            outcome.untouched.append(original.id)
    return outcome
