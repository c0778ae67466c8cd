"""The one way in for outgoing mail: validate, store in the outbox, then hand to the worker."""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import insert

from portal import crypto
from portal.exceptions import BatchValidationError, MailValidationError
from portal.extensions import db
from portal.models import Company, OutboxMessage, User, stored_id
from portal.outbox import handoff
from portal.outbox.compose import Attachment, Composed, compose, headers_only
from portal.settings.versioned import Current, resolve_current

__all__ = ["MAX_BATCH", "Attachment", "send", "send_many"]

log = logging.getLogger(__name__)

MAX_BATCH = 500  # mails per send_many call: one transaction, one wake-up
# What a mapping given to send_many may hold: send()'s keyword arguments.
MAIL_FIELDS = frozenset(
    {"to", "subject", "text", "html", "cc", "bcc", "reply_to", "attachments", "user"}
    | {"one_time_link"}
)
MSG_UNKNOWN = "Unknown field."
MSG_TOO_MANY = f"At most {MAX_BATCH} mails per call."


def _values(
    current: Current,
    company: Company | None,
    user: User | None,
    composed: Composed,
    one_time_link: bool,
) -> dict[str, Any]:
    """The outbox row of a rendered mail, as column values."""
    lane = current.lane
    return dict(
        company_id=stored_id(company),
        user_id=stored_id(user),
        message_id=composed.message_id,
        group_key=lane if current.settings.group_sends else None,
        lane=lane,
        envelope_from=composed.envelope_from,
        recipients=list(composed.recipients),
        subject=composed.subject,
        raw=headers_only(composed.raw) if one_time_link else composed.raw,
        one_time_link=one_time_link,
        sealed_raw=crypto.encrypt_bytes(composed.raw) if one_time_link else None,
        size=len(composed.raw),
        recipient_results={},
    )


def _compose(current: Current, company: Company | None, mail: Mapping[str, Any]) -> Composed:
    fields = {name: value for name, value in mail.items() if name != "one_time_link"}
    fields.setdefault("to", ())
    fields.setdefault("subject", "")
    fields.setdefault("user", None)
    return compose(
        current.settings,
        company=company,
        max_bytes=current_app.config["MAIL_MAX_MESSAGE_BYTES"],
        **fields,
    )


def _wake(lanes: Sequence[str], ids: Sequence[int]) -> None:
    try:
        handoff.wake(lanes)
    except Exception:
        # The mail is stored and the workers' poll finds it: an error now would only make
        # the caller send it again.
        which = str(ids[0]) if len(ids) == 1 else f"{ids[0]} to {ids[-1]} ({len(ids)} mails)"
        log.exception("mail %s not handed to the worker; its poll finds it", which)


def send(
    company: Company | None,
    *,
    to: Sequence[str],
    subject: str,
    text: str | None = None,
    html: str | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
    user: User | None = None,
    one_time_link: bool = False,
    before_commit: Callable[[OutboxMessage], None] | None = None,
) -> OutboxMessage:
    """Queue a mail for a company (None: the global settings); user None means system mail.

    Raises MailValidationError with a message per bad field; nothing is stored then.
    The row is committed before the worker hears of it, so the worker always finds it.
    A mail with `one_time_link` is stored as headers plus the whole mail encrypted, which
    the outcome of its delivery drops: its link is never readable from the database.
    `before_commit` gets the row, its id known, to add what must be stored with it in the
    same transaction (an API request's Idempotency-Key): both are stored, or neither.
    """
    mail = {
        "to": to,
        "subject": subject,
        "text": text,
        "html": html,
        "cc": cc,
        "bcc": bcc,
        "reply_to": reply_to,
        "attachments": attachments,
        "user": user,
    }
    current = resolve_current(company)
    rendered = _compose(current, company, mail)
    message = OutboxMessage(**_values(current, company, user, rendered, one_time_link))
    db.session.add(message)
    db.session.flush()
    ids = [message.id]  # read before the commit expires the row
    if before_commit is not None:
        before_commit(message)
    db.session.commit()
    _wake([current.lane], ids)
    return message


def _validated(
    current: Current, company: Company | None, mails: Sequence[Mapping[str, Any]]
) -> list[Composed]:
    """Every mail rendered, or BatchValidationError naming each bad mail and field."""
    composed: list[Composed] = []
    items: dict[int, dict[str, str]] = {}
    for index, mail in enumerate(mails):
        unknown = {name: MSG_UNKNOWN for name in mail if name not in MAIL_FIELDS}
        if unknown:
            items[index] = unknown
            continue
        try:
            composed.append(_compose(current, company, mail))
        except MailValidationError as exc:
            items[index] = exc.errors
    if items:
        raise BatchValidationError(items)
    return composed


def send_many(
    company: Company | None,
    mails: Sequence[Mapping[str, Any]],
    *,
    before_commit: Callable[[list[OutboxMessage]], None] | None = None,
) -> list[OutboxMessage]:
    """Queue up to MAX_BATCH mails for a company at once: all of them, or none.

    Each mapping holds send()'s keyword arguments. Every mail is validated before anything
    is stored: BatchValidationError names each bad one ("mails[3].to") and nothing is
    stored then. The rows are inserted in one statement and committed together, then the
    workers get one wake-up for all. `before_commit` gets the rows, their ids known.
    """
    if len(mails) > MAX_BATCH:
        raise BatchValidationError({}, {"mails": MSG_TOO_MANY})
    if not mails:
        return []
    current = resolve_current(company)
    composed = _validated(current, company, mails)
    rows = [
        _values(current, company, mail.get("user"), rendered, bool(mail.get("one_time_link")))
        for mail, rendered in zip(mails, composed, strict=True)
    ]
    # One INSERT for all, past the unit of work: the rows come back as objects of the session.
    inserted = insert(OutboxMessage).returning(OutboxMessage, sort_by_parameter_order=True)
    messages = list(db.session.scalars(inserted, rows))
    ids = [message.id for message in messages]  # read before the commit expires the rows
    if before_commit is not None:
        before_commit(messages)
    db.session.commit()
    _wake([current.lane], ids)
    return messages
