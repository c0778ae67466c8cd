"""The "Send a test mail through the queue" button of the Mail page and the Email tab."""

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import tenancy
from portal.exceptions import MailValidationError
from portal.extensions import limiter
from portal.models import FINAL_STATUSES, Company, OutboxMessage
from portal.outbox import test_mail
from portal.web.access import current_scope, superuser_required, visible_company
from portal.web.connection_texts import recognized
from portal.web.htmx import UNPROCESSABLE, is_htmx

bp = Blueprint("test_mail", __name__)
LIMIT_SCOPE = "test-mail"  # one allowance per user across the global page and every company


def _test_limit() -> str:
    return current_app.config["MAIL_TEST_RATE_LIMIT"]


def _refusal(message: str, status: int):
    return render_template("history/_test_mail.html", refusal=message), status


@bp.errorhandler(429)
def _too_many(exc):
    limit = getattr(exc, "description", "")
    return _refusal(_("Too many test mails (%(limit)s). Try again later.", limit=limit), 429)


def _log_url(message: OutboxMessage) -> str:
    if message.company_id is None:
        return url_for("maillog.all_log", company="global", type="tests")
    return url_for("maillog.company_log", company_id=message.company_id, type="tests")


def _panel(message: OutboxMessage):
    return render_template(
        "history/_test_mail.html",
        message=message,
        final=message.status in FINAL_STATUSES,
        status_url=url_for("test_mail.status", message_id=message.id),
        log_url=_log_url(message),
    )


def _send(company: Company | None):
    try:
        message = test_mail.send(company, current_user, request.form.get("queue_recipient", ""))
    except MailValidationError as exc:
        return _refusal(
            " ".join(recognized(str(text)) for text in exc.errors.values()), UNPROCESSABLE
        )
    if not is_htmx():
        return redirect(url_for("maillog.detail", message_id=message.id), 303)
    return _panel(message)


@bp.post("/settings/mail/test-mail")
@superuser_required
@limiter.shared_limit(_test_limit, scope=LIMIT_SCOPE)
def send_global():
    """Queue a test mail with the global settings."""
    return _send(None)


@bp.post("/companies/<int:company_id>/email/test-mail")
@login_required
@limiter.shared_limit(_test_limit, scope=LIMIT_SCOPE)
def send_company(company_id: int):
    """Queue a test mail with the settings in force for a company."""
    return _send(visible_company(company_id))


@bp.get("/mail/<int:message_id>/test-status")
@login_required
def status(message_id: int):
    """A queued test mail's panel as it stands; 404 outside the user's scope or for other mail."""
    message = tenancy.find(OutboxMessage, message_id, current_scope())
    if message is None or not message.is_test:
        abort(404)
    return _panel(message)
