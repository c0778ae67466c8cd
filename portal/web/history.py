"""The settings history pages: the superuser's of every scope, and each company's own."""

from datetime import datetime

from flask import Blueprint, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select

from portal import audit
from portal.extensions import db
from portal.models import Company, as_utc
from portal.tenancy import ALL, GLOBAL, Scope
from portal.web.access import superuser_required, visible_company
from portal.web.htmx import UNPROCESSABLE, respond
from portal.web.labels import KIND_LABELS, actions_of

bp = Blueprint("history", __name__)
MAX_PAGE = 10_000  # a page number past any real history; bigger ones are refused


def _number(value: str, errors: dict[str, str]) -> int:
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        errors["page"] = _("This page link is broken: start again from the newest entries.")
        return 1
    return int(value)


def _kind(value: str, errors: dict[str, str]) -> list[str] | None:
    if not value:
        return None
    if value not in KIND_LABELS:
        errors["kind"] = _("Choose a kind from the list.")
        return None
    return actions_of(value)


def _company_scope(value: str, errors: dict[str, str]) -> Scope:
    if value in ("", ALL):
        return ALL
    if value == GLOBAL:
        return GLOBAL
    if value.isdigit() and db.session.get(Company, int(value)) is not None:
        return int(value)
    errors["company"] = _("Choose a company from the list.")
    return ALL


def _company_names() -> dict[int, str]:
    query = select(Company.id, Company.name).order_by(func.lower(Company.name))
    return {company_id: name for company_id, name in db.session.execute(query)}


def _show(endpoint: str, scope: Scope, company: Company | None, values: dict[str, str], errors):
    actions = _kind(values["kind"], errors)
    number = _number(request.args.get("page", ""), errors)
    shown = audit.page(scope, actions, number) if not errors else audit.HistoryPage([], 1, False)
    url_args = {"company_id": company.id} if company is not None else {}
    filters = {name: value for name, value in values.items() if value}

    def page_url(n: int) -> str:
        return url_for(endpoint, **url_args, **filters, **({"page": n} if n > 1 else {}))

    context = {
        "company": company,
        "companies": {} if company is not None else _company_names(),
        "values": values,
        "errors": errors,
        "kinds": KIND_LABELS,
        "shown": shown,
        "action": url_for(endpoint, **url_args),
        "newer_url": page_url(shown.number - 1) if shown.number > 1 else None,
        "older_url": page_url(shown.number + 1) if shown.has_older else None,
    }
    status = UNPROCESSABLE if errors else 200
    return respond("history/page.html", "history/_entries.html", status, **context)


@bp.get("/settings/history")
@superuser_required
def all_history():
    """Every scope's history; the company filter narrows it to one company or the global one."""
    errors: dict[str, str] = {}
    values = {name: request.args.get(name, "").strip() for name in ("company", "kind")}
    scope = _company_scope(values["company"], errors)
    return _show("history.all_history", scope, None, values, errors)


@bp.get("/companies/<int:company_id>/history")
@login_required
def company_history(company_id: int):
    """One company's history, for its admins and the superuser."""
    company = visible_company(company_id)
    values = {"kind": request.args.get("kind", "").strip()}
    return _show("history.company_history", company.id, company, values, {})


@bp.app_template_filter("iso_utc")
def iso_utc(moment: datetime | None) -> str:
    """A stored time as ISO 8601 in UTC, for a <time datetime> a machine reads."""
    return as_utc(moment).isoformat() if moment is not None else ""


@bp.app_template_global()
def history_url(company: Company | None = None) -> str:
    """The full history beside a short list: the company's, or every scope's for no company."""
    if isinstance(company, Company):
        return url_for("history.company_history", company_id=company.id)
    return url_for("history.all_history")
