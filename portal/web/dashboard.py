"""The queue dashboard: the superuser's live view of the outbox, the workers and their sessions."""

from datetime import datetime

from flask import Blueprint, url_for
from flask_babel import format_number
from flask_babel import gettext as _

from portal.models import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
)
from portal.outbox import dashboard, processes
from portal.tenancy import GLOBAL
from portal.web.access import superuser_required
from portal.web.htmx import respond

bp = Blueprint("dashboard", __name__)
POLL_SECONDS = 5  # the live part's refresh, while its tab is visible
LINKED = (STATUS_QUEUED, STATUS_SENDING, STATUS_DEFERRED, STATUS_FAILED, STATUS_SENT)


@bp.app_template_filter("age")
def age(moment: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit that fits: "42 s", "7 min", "3 h 5 min", "2 d".

    The units' abbreviations are the page language's; a day count has its digit grouping.
    """
    if moment is None:
        return "—"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return _("%(seconds)s s", seconds=seconds)
    if seconds < 3600:
        return _("%(minutes)s min", minutes=seconds // 60)
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        if minutes:
            return _("%(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
        return _("%(hours)s h", hours=hours)
    return _("%(days)s d", days=format_number(seconds // 86400))


def log_links(company_id: int | None = None, lane: str | None = None) -> dict[str, str]:
    """The mail log filtered to what each count counts: a company's (or the global) mail, or a
    lane's, by status."""
    where = (
        {"lane": lane}
        if lane is not None
        else {"company": GLOBAL if company_id is None else str(company_id)}
    )
    return {status: url_for("maillog.all_log", status=status, **where) for status in LINKED}


@bp.get("/dashboard")
@superuser_required
def show():
    """The whole page; an htmx poll gets the live part alone."""
    overview = dashboard.overview()
    seen = processes.seen()
    peak = max((minute.sent for minute in overview.minutes), default=0)
    return respond(
        "dashboard/page.html",
        "dashboard/_live.html",
        overview=overview,
        seen=seen,
        peak=peak,
        log_links=log_links,
        poll_seconds=POLL_SECONDS,
    )
