"""The portal's own mails (invitation, password reset): rendered from templates, then queued."""

import logging
from collections.abc import Callable

from flask import render_template

from portal import accounts
from portal.exceptions import MailValidationError
from portal.models import Company, OutboxMessage, User
from portal.outbox.intake import send
from portal.text import duration_text

log = logging.getLogger(__name__)
RESET_SUBJECT = "Reset your password for the mail portal"


def _render(name: str, **context) -> tuple[str, str]:
    """The text and the (autoescaped) HTML body of a system mail."""
    base = f"mail_templates/{name}"
    return render_template(f"{base}.txt", **context), render_template(f"{base}.html", **context)


def send_invitation(user: User, company: Company, link: str) -> OutboxMessage:
    """Queue the system mail inviting a company admin; MailValidationError if it cannot be."""
    valid_for = duration_text(accounts.link_max_age(accounts.INVITATION))
    text, html = _render("invitation", user=user, company=company, link=link, valid_for=valid_for)
    subject = f"You are invited to manage mail for {company.name}"
    return send(company, to=[user.email], subject=subject, text=text, html=html)


def request_reset(email: str, link_for: Callable[[str], str]) -> OutboxMessage | None:
    """Queue a reset-link mail if an account may log in with this email; None otherwise.

    Unknown addresses go through the same token and rendering work, so the answer
    takes about as long; a mail that cannot be queued is logged, never reported.
    """
    user = accounts.find_by_email(email)
    if user is not None and not (user.is_superuser or user.company_id is not None):
        user = None  # a removed admin has nothing to log in to
    target = user or User(id=0, email=email)  # a stand-in, never stored: same work, no mail
    link = link_for(accounts.password_token(target, accounts.RESET))
    valid_for = duration_text(accounts.link_max_age(accounts.RESET))
    text, html = _render("reset", user=target, link=link, valid_for=valid_for)
    if user is None:
        return None
    company = None if user.is_superuser else user.company
    try:
        return send(company, to=[user.email], subject=RESET_SUBJECT, text=text, html=html)
    except MailValidationError as exc:
        log.warning("Password reset mail for user %s not queued: %s", user.id, exc)
        return None
