"""The Test connection button of the Mail page and the Email tab: start, watch, cancel.

The start answers at once with a panel that polls the test's state every second until the
worker has finished it; no request waits for the SMTP server.
"""

import re
import time

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from portal import audit
from portal.delivery import connection_jobs
from portal.delivery import connection_progress as progress
from portal.delivery.connection_check import CONNECT_TIMEOUT_SECONDS, TestRefusedError
from portal.extensions import limiter
from portal.models import Company, MailConfig
from portal.settings.resolution import global_config
from portal.settings.saving import ca_choice, form_values
from portal.web.access import superuser_required, visible_company
from portal.web.company_form import company_form
from portal.web.connection_texts import said, said_outcome
from portal.web.forms import GlobalMailForm
from portal.web.htmx import UNPROCESSABLE, swapped_on_error

bp = Blueprint("connection_test", __name__)
# The panel and the connection-test history translate the stored English texts when shown.
bp.add_app_template_global(said)
bp.add_app_template_global(said_outcome)
# A connection test opens one connection: how many the worker may open neither blocks nor
# changes it, so a test runs whatever this field holds (and with the value in force).
NOT_TESTED = ("max_sessions",)


def _test_limit() -> str:
    return current_app.config["MAIL_TEST_RATE_LIMIT"]


def _counted(response) -> bool:
    """Only a test that started counts against the quota: a refusal (422) opened no connection."""
    return response.status_code != UNPROCESSABLE


# Flask-Limiter's words for a limit ("10 per 10 minute"), each period a whole phrase to translate.
LIMIT = re.compile(r"(\d+) per (?:(\d+) )?(second|minute|hour|day|month|year)s?")
PERIODS = {
    "second": lambda n, a: ngettext(
        "%(amount)s per %(num)d second", "%(amount)s per %(num)d seconds", n, amount=a
    ),
    "minute": lambda n, a: ngettext(
        "%(amount)s per %(num)d minute", "%(amount)s per %(num)d minutes", n, amount=a
    ),
    "hour": lambda n, a: ngettext(
        "%(amount)s per %(num)d hour", "%(amount)s per %(num)d hours", n, amount=a
    ),
    "day": lambda n, a: ngettext(
        "%(amount)s per %(num)d day", "%(amount)s per %(num)d days", n, amount=a
    ),
    "month": lambda n, a: ngettext(
        "%(amount)s per %(num)d month", "%(amount)s per %(num)d months", n, amount=a
    ),
    "year": lambda n, a: ngettext(
        "%(amount)s per %(num)d year", "%(amount)s per %(num)d years", n, amount=a
    ),
}


def limit_text(limit: str) -> str:
    """'10 per 10 minutes' for Flask-Limiter's '10 per 10 minute', in the page's language."""
    found = LIMIT.fullmatch(limit.strip())
    if found is None:
        return limit
    amount, count, unit = found.groups()
    return PERIODS[unit](int(count or 1), amount)


def render_test_refusal(message: str, status: int):
    """The test panel saying why no test ran (bad input, a test running, too many tests).

    `message` is in the page's language already.
    """
    return swapped_on_error(render_template("mail/_test_result.html", refusal=message), status)


@bp.errorhandler(429)
def _too_many_tests(exc):
    limit = limit_text(getattr(exc, "description", ""))
    message = _("Too many connection tests (%(limit)s). Try again later.", limit=limit)
    return render_test_refusal(message, 429)


def _start(form, saved: MailConfig | None, company: Company | None):
    form.validate()
    bad = ", ".join(f.label.text for f in form if f.errors and f.name not in NOT_TESTED)
    if bad:
        # The security rule's reason is the whole point of the refusal: say it here too.
        reasons = "".join(f" {error}" for error in form.security.errors)
        message = _("Correct these fields first: %(fields)s.", fields=bad) + reasons
        return render_test_refusal(message, UNPROCESSABLE)
    recipient = request.form.get("test_recipient", "")
    values, typed = form_values(form), form.password.data or ""
    # The certificates pasted or uploaded count, saved or not; Remove tests without the saved ones.
    values["ca_bundle"] = ca_choice(saved, form.typed_ca_bundle(), form.remove_ca_bundle.data)
    for name in NOT_TESTED:
        values.pop(name, None)
    try:
        test_id = connection_jobs.start(values, typed, saved, company, current_user, recipient)
    except TestRefusedError as exc:
        return render_test_refusal(said(exc.text, exc.params or None), exc.status)
    return _panel(test_id, company)


def _panel(test_id: str, company: Company | None, *, cancelled: bool = False):
    """The panel of the user's own test in this scope; 404 for any other test."""
    state = connection_jobs.state_for(test_id, current_user, company)
    if state is None:
        abort(404)
    if cancelled:
        state = connection_jobs.cancel(test_id, state, company)
    scope = {} if company is None else {"company_id": company.id}
    prefix = "mail_settings.connection_test." + ("status" if company is None else "company_status")
    context = {
        "company": company,
        "state": state,
        "status_url": url_for(prefix, test_id=test_id, **scope),
        "cancel_url": url_for(prefix.replace("status", "cancel"), test_id=test_id, **scope),
        "connect_seconds": CONNECT_TIMEOUT_SECONDS,
    }
    if state["status"] != progress.DONE:
        began = state["started_at"] or state["queued_at"]
        context.update(
            steps=progress.shown_steps(state["steps"]),
            elapsed=time.time() - began,
            waiting=_said_or_none(connection_jobs.waiting(state)),
            cancelling=cancelled or connection_jobs.cancel_asked(test_id),
        )
    elif state["refusal"]:
        context["refusal"] = said(state["refusal"], state.get("refusal_params"))
    else:
        context.update(
            result=progress.shown_result(state),
            server=state["server"],
            dkim=state["dkim"],
            history=audit.recent(company),
        )
    return render_template("mail/_test_result.html", **context)


def _said_or_none(text: str | None) -> str | None:
    return said(text) if text else None


@bp.post("/settings/mail/test")
@superuser_required
@limiter.limit(_test_limit, deduct_when=_counted)
def test_global():
    """Start a test of the global form's values against the real server."""
    return _start(GlobalMailForm(), global_config(), None)


@bp.get("/settings/mail/test/<test_id>")
@superuser_required
def status(test_id: str):
    """The global page's test as it stands: its steps so far, or its result."""
    return _panel(test_id, None)


@bp.post("/settings/mail/test/<test_id>/cancel")
@superuser_required
def cancel(test_id: str):
    """Stop the global page's running test."""
    return _panel(test_id, None, cancelled=True)


@bp.post("/companies/<int:company_id>/email/test")
@login_required
@limiter.limit(_test_limit, deduct_when=_counted)
def test_company(company_id: int):
    """Start a test of a company's form values against the real server."""
    company = visible_company(company_id)
    return _start(company_form(company), company.mail_config, company)


@bp.get("/companies/<int:company_id>/email/test/<test_id>")
@login_required
def company_status(company_id: int, test_id: str):
    """A company's test as it stands, for the admin who started it."""
    return _panel(test_id, visible_company(company_id))


@bp.post("/companies/<int:company_id>/email/test/<test_id>/cancel")
@login_required
def company_cancel(company_id: int, test_id: str):
    """Stop a company's running test."""
    return _panel(test_id, visible_company(company_id), cancelled=True)
