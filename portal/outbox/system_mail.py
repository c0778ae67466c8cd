"""The portal's own mails (invitation, password reset): rendered from templates, then queued.

Each is written in its recipient's language (theirs, else their company's), whoever sends it:
the superuser's request, or the worker's job, which runs in an app context.
"""

import logging

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError

from portal import accounts, i18n
from portal.exceptions import MailValidationError
from portal.models import Company, OutboxMessage, User
from portal.outbox import handoff
from portal.outbox.intake import send
from portal.text import duration_text

log = logging.getLogger(__name__)
RESET_SUBJECT = _l("Reset your password for the mail portal")
SEND_RESET = "portal.outbox.system_mail.send_reset"


def _render(name: str, language: str, **context) -> tuple[str, str]:
    """The text and the (autoescaped) HTML body of a system mail; call it speaking `language`."""
    base = f"mail_templates/{name}"
    html = render_template(f"{base}.html", lang=language.replace("_", "-"), **context)
    return render_template(f"{base}.txt", **context), html


def send_invitation(user: User, company: Company, link: str) -> OutboxMessage:
    """Queue the system mail inviting a company admin; MailValidationError if it cannot be."""
    language = i18n.language_of(user)
    with i18n.speaking(language):
        valid_for = duration_text(accounts.link_max_age(accounts.INVITATION))
        text, html = _render(
            "invitation", language, user=user, company=company, link=link, valid_for=valid_for
        )
        subject = _("You are invited to manage mail for %(company)s", company=company.name)
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
    language = i18n.language_of(user)
    with i18n.speaking(language):
        valid_for = duration_text(accounts.link_max_age(accounts.RESET))
        text, html = _render("reset", language, user=user, link=link, valid_for=valid_for)
        subject = str(RESET_SUBJECT)
    company = None if user.is_superuser else user.company
    try:
        send(
            company,
            to=[user.email],
            subject=subject,
            text=text,
            html=html,
            one_time_link=True,
        )
    except MailValidationError as exc:
        log.warning("Password reset mail for user %s not queued: %s", user.id, exc)
