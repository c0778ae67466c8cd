"""The portal's own mails (invitation, password reset): rendered from templates, then queued."""

import logging

from flask import render_template
from redis.exceptions import RedisError

from portal import accounts
from portal.exceptions import MailValidationError
from portal.models import Company, OutboxMessage, User
from portal.outbox import handoff
from portal.outbox.intake import send
from portal.text import duration_text

log = logging.getLogger(__name__)
RESET_SUBJECT = "Reset your password for the mail portal"
SEND_RESET = "portal.outbox.system_mail.send_reset"


def _render(name: str, **context) -> tuple[str, str]:
    """The text and the (autoescaped) HTML body of a system mail."""
    base = f"mail_templates/{name}"
    return render_template(f"{base}.txt", **context), render_template(f"{base}.html", **context)


def send_invitation(user: User, company: Company, link: str) -> OutboxMessage:
    """Queue the system mail inviting a company admin; MailValidationError if it cannot be."""
    valid_for = duration_text(accounts.link_max_age(accounts.INVITATION))
    text, html = _render("invitation", user=user, company=company, link=link, valid_for=valid_for)
    subject = f"You are invited to manage mail for {company.name}"
    return send(company, to=[user.email], subject=subject, text=text, html=html, one_time_link=True)


def request_reset(email: str, link_prefix: str) -> None:
    """Hand a reset request to the worker: one job, whether or not the address has an account.

    The lookup happens in the job, so the request does the same work and takes as long for
    every address. `link_prefix` is this site's set-password URL without its token.
    """
    try:
        handoff.mail_queue().enqueue(SEND_RESET, email, link_prefix, retry=handoff.JOB_RETRY)
    except RedisError as exc:
        # The mail must not be lost with Redis: look up here (the outbox keeps it for later),
        # though then the answer's timing can differ.
        log.warning("reset request handled in the web process: Redis is unreachable (%s)", exc)
        send_reset(email, link_prefix)


def send_reset(email: str, link_prefix: str) -> None:
    """RQ job: queue a reset-link mail if an account may log in with this email.

    A mail that cannot be queued is logged, never reported: the answer was given already.
    """
    user = accounts.find_by_email(email)
    if user is None or not (user.is_superuser or user.company_id is not None):
        return  # a removed admin has nothing to log in to
    link = link_prefix + accounts.password_token(user, accounts.RESET)
    valid_for = duration_text(accounts.link_max_age(accounts.RESET))
    text, html = _render("reset", user=user, link=link, valid_for=valid_for)
    company = None if user.is_superuser else user.company
    try:
        send(
            company,
            to=[user.email],
            subject=RESET_SUBJECT,
            text=text,
            html=html,
            one_time_link=True,
        )
    except MailValidationError as exc:
        log.warning("Password reset mail for user %s not queued: %s", user.id, exc)
