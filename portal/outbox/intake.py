"""The one way in for outgoing mail: validate, store in the outbox, then hand to the worker."""

import logging
from collections.abc import Callable, Sequence

from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.models import Company, OutboxMessage, User
from portal.outbox import handoff
from portal.outbox.compose import Attachment, compose, headers_only
from portal.settings.resolution import resolve, session_key

__all__ = ["Attachment", "send"]

log = logging.getLogger(__name__)


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
    settings = resolve(company)
    lane = session_key(settings)
    composed = compose(
        settings,
        company=company,
        user=user,
        to=to,
        subject=subject,
        text=text,
        html=html,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        attachments=attachments,
        max_bytes=current_app.config["MAIL_MAX_MESSAGE_BYTES"],
    )
    message = OutboxMessage(
        company_id=company.id if company is not None else None,
        user_id=user.id if user is not None else None,
        message_id=composed.message_id,
        group_key=lane if settings.group_sends else None,
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
    db.session.add(message)
    db.session.flush()
    message_id = message.id  # no reload after the commit
    if before_commit is not None:
        before_commit(message)
    db.session.commit()
    try:
        handoff.wake([lane])
    except Exception:
        # The mail is stored and the sweep hands it over: an error now would only make the
        # caller send it again.
        log.exception("mail %s not handed to the worker; the sweep will", message_id)
    return message
