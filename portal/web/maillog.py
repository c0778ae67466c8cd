"""The mail log: every mail of a company (or all, for the superuser), its detail and resend."""

import re
from dataclasses import dataclass, field
from datetime import date

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext, pgettext
from flask_login import current_user, login_required
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal import audit
from portal.extensions import db
from portal.models import (
    FINAL_STATUSES,
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_UNKNOWN,
    Company,
)
from portal.outbox import dashboard, handoff, queries
from portal.outbox.queries import STATUSES, CursorError, LogFilter, Page
from portal.tenancy import ALL, GLOBAL, Scope
from portal.web import mail_view
from portal.web.access import current_scope, superuser_required, visible_company
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond

bp = Blueprint("maillog", __name__)
bp.register_blueprint(mail_view.bp)  # the filters and the preview the log's pages use
FILTER_FIELDS = ("status", "from", "to", "q", "company", "lane", "type")
TESTS = "tests"  # the type filter's one value: test mails, and the connection tests beside them
CONNECTION_TESTS_SHOWN = 10
MAX_IDS = 2 * queries.DEFAULT_PAGE_SIZE  # per resend or poll request
MAX_SEARCH_CHARS = 200
MSG_BAD_DATE = _l("Enter a date as YYYY-MM-DD.")
LANE = re.compile(r"[0-9a-f]{64}")  # a lane key (settings.resolution.session_key)
MSG_BAD_IDS = _l("Select at least one mail.")
MSG_ONE_TIME_LINK = _l(
    "Mails with a one-time link are never sent again: send a new invitation or reset link."
)


@dataclass
class Listing:
    """One mail log page: whose mails, the filters asked for, and how to link to it."""

    scope: Scope
    endpoint: str
    company: Company | None = None
    values: dict[str, str] = field(default_factory=dict)  # the filter fields as typed
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """The page without filters."""
        return self.url(_filters=False)

    def url(self, _filters: bool = True, _without: str = "", **extra) -> str:
        url_args = {"company_id": self.company.id} if self.company is not None else {}
        filters = {k: v for k, v in self.values.items() if v and _filters and k != _without}
        return url_for(self.endpoint, **url_args, **filters, **extra)


def _status_labels() -> dict[str, str]:
    return {
        STATUS_QUEUED: pgettext("mail status", "queued"),
        STATUS_SENDING: pgettext("mail status", "sending"),
        STATUS_SENT: pgettext("mail status", "sent"),
        STATUS_DEFERRED: pgettext("mail status", "deferred"),
        STATUS_FAILED: pgettext("mail status", "failed"),
        STATUS_UNKNOWN: pgettext("mail status", "unknown"),
    }


@bp.app_template_filter("status_label")
def status_label(status: str | None) -> str:
    """A mail's (or a recipient's, or an attempt's) stored status, named in the page's language."""
    return _status_labels().get(status or "", status or "")


def _date(value: str, name: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = str(MSG_BAD_DATE)
        return None


def _company_scope(value: str, errors: dict[str, str]) -> Scope:
    if value in ("", ALL):
        return ALL
    if value == GLOBAL:
        return GLOBAL
    if value.isdigit():
        return int(value)
    errors["company"] = _("Choose a company from the list.")
    return ALL


def _parse(listing: Listing, args: MultiDict) -> LogFilter:
    """The filters from a query string (or form); problems go to listing.errors."""
    listing.values = {name: args.get(name, "").strip() for name in FILTER_FIELDS}
    if listing.company is not None:
        listing.values.pop("company")
    errors = listing.errors
    if listing.company is None:
        listing.scope = _company_scope(listing.values["company"], errors)
    status = listing.values["status"]
    if status and status not in STATUSES:
        errors["status"] = _("Choose a status from the list.")
    since = _date(listing.values["from"], "from", errors)
    until = _date(listing.values["to"], "to", errors)
    if since and until and since > until:
        errors["to"] = _("The end date is before the start date.")
    search = listing.values["q"][:MAX_SEARCH_CHARS]
    lane = listing.values["lane"]
    if lane and not LANE.fullmatch(lane):
        errors["lane"] = _("This server link is broken: open it again from the queue dashboard.")
    kind = listing.values["type"]
    if kind and kind != TESTS:
        errors["type"] = _("Choose a type from the list.")
    return LogFilter(
        listing.scope, status or None, since, until, search, lane or None, kind == TESTS
    )


def _page(listing: Listing, filters: LogFilter, cursor: str) -> Page:
    if listing.errors:
        return Page([], None)
    try:
        return queries.page(filters, cursor or None)
    except CursorError:
        listing.errors["cursor"] = _("This page link is broken: start again from the newest mail.")
        return Page([], None)


def _company_names() -> dict[int, str]:
    if not current_user.is_superuser:
        return {}
    query = select(Company.id, Company.name).order_by(func.lower(Company.name))
    return {company_id: name for company_id, name in db.session.execute(query)}


def _lane_server(lane: str) -> dashboard.Server | None:
    """The server a lane filter names, for the filter form to say so."""
    if not LANE.fullmatch(lane):
        return None
    return dashboard.server_of(lane, dashboard.servers())


def _connection_tests(listing: Listing) -> list | None:
    """The latest connection tests of the log's scope, shown beside its test mails."""
    if listing.values.get("type") != TESTS or listing.errors:
        return None
    return audit.page(listing.scope, ["mail_settings.test"], size=CONNECTION_TESTS_SHOWN).entries


def _render(listing: Listing, page: Page, cursor: str = "", notice: str | None = None):
    page_template = (
        "maillog/company.html" if listing.endpoint.endswith("company_log") else "maillog/all.html"
    )
    context = {
        "listing": listing,
        "company": listing.company,
        "companies": _company_names(),
        "page": page,
        "cursor": cursor,
        "notice": notice,
        "statuses": STATUSES,
        "pending": [row.id for row in page.rows if row.status not in FINAL_STATUSES],
        "lane_server": _lane_server(listing.values.get("lane", "")),
        "connection_tests": _connection_tests(listing),
    }
    status = UNPROCESSABLE if listing.errors else 200
    return respond(page_template, "maillog/_rows.html", status, **context)


def _show(listing: Listing, args: MultiDict, notice: str | None = None, problem: str = ""):
    filters = _parse(listing, args)
    cursor = args.get("cursor", "")
    page = _page(listing, filters, cursor)
    if problem:
        listing.errors["ids"] = str(problem)
    return _render(listing, page, cursor, notice)


@bp.get("/companies/<int:company_id>/mail")
@login_required
def company_log(company_id: int):
    company = visible_company(company_id)
    return _show(Listing(company.id, "maillog.company_log", company), request.args)


@bp.get("/mail")
@superuser_required
def all_log():
    return _show(Listing(ALL, "maillog.all_log"), request.args)


def _detail(message_id: int) -> queries.Detail:
    found = queries.detail(message_id, current_scope())
    if found is None:
        abort(404)
    return found


@bp.get("/mail/<int:message_id>")
@login_required
def detail(message_id: int):
    found = _detail(message_id)
    company = (
        db.session.get(Company, found.message.company_id) if found.message.company_id else None
    )
    return render_template(
        "maillog/detail.html",
        detail=found,
        message=found.message,
        company=company,
        one_time_link_note=str(MSG_ONE_TIME_LINK),
    )


@bp.get("/mail/<int:message_id>/html")
@login_required
def html(message_id: int):
    """The mail's HTML part, for the sandboxed frame of its detail page."""
    found = _detail(message_id)
    if found.html is None:
        abort(404)
    return mail_view.html_preview(found.html)


@bp.get("/mail/<int:message_id>/attachments/<int:number>")
@login_required
def attachment(message_id: int, number: int):
    """One of the mail's attachments (counted from 1), downloaded as it was sent."""
    found = _detail(message_id).attachments
    if not 1 <= number <= len(found):
        abort(404)
    return mail_view.download(found[number - 1])


def _ids(values: list[str]) -> list[int] | None:
    """Mail ids from `ids` fields, each one id or several joined by commas; None if malformed."""
    parts = [part for value in values for part in value.split(",") if part.strip()]
    if not parts or len(parts) > MAX_IDS or not all(p.strip().isdigit() for p in parts):
        return None
    return sorted({int(part) for part in parts})


def _listing_for_form(form: MultiDict) -> Listing:
    """The page a resend came from, to render it again."""
    company_page = form.get("company_page", "")
    if company_page.isdigit():
        company = visible_company(int(company_page))
        return Listing(company.id, "maillog.company_log", company)
    if current_user.is_superuser:
        return Listing(ALL, "maillog.all_log")
    return Listing(current_scope(), "maillog.company_log", visible_company(current_scope()))


def _numbers(ids) -> str:
    return ", ".join(f"#{i}" for i in ids)


def _resend_notice(outcome: queries.ResendOutcome) -> str:
    """What a resend did, in sentences of the page's language."""
    count = len(outcome.handoffs)
    sentences = [ngettext("%(num)d mail queued again.", "%(num)d mails queued again.", count)]
    if outcome.copies:
        copies = ", ".join(
            _("#%(old)s resent as #%(new)s", old=old, new=new) for old, new in outcome.copies
        )
        sentences.append(copies + ".")
    if outcome.untouched:
        ids = _numbers(outcome.untouched)
        sentences.append(_("Left alone, still queued or being sent: %(ids)s.", ids=ids))
    if outcome.one_time_links:
        ids = _numbers(outcome.one_time_links)
        sentences += [str(MSG_ONE_TIME_LINK), _("Not resent: %(ids)s.", ids=ids)]
    return " ".join(sentences)


@bp.post("/mail/resend")
@login_required
def resend():
    listing = _listing_for_form(request.form)
    ids = _ids(request.form.getlist("ids"))
    if ids is None:
        return _show(listing, request.form, problem=MSG_BAD_IDS)
    outcome = queries.resend(ids, current_scope())
    db.session.commit()
    if outcome.handoffs:
        handoff.wake(lane for _, lane in outcome.handoffs)
    notice = _resend_notice(outcome)
    if not is_htmx():
        flash(notice)
        return redirect(listing.url())
    return _show(listing, request.form, notice)


@bp.get("/mail/rows")
@login_required
def rows():
    """The current state of the given visible rows, polled while any of them is not final."""
    ids = _ids(request.args.getlist("ids"))
    if ids is None:
        return "", UNPROCESSABLE
    found = queries.rows(ids, current_scope())
    pending = [row.id for row in found if row.status not in FINAL_STATUSES]
    return render_template(
        "maillog/_poll_response.html",
        rows=found,
        pending=pending,
        companies=_company_names(),
        oob=True,
    )
