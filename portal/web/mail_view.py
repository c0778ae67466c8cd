"""Showing a mail on a page: clickable links, sizes and times for people, its HTML fenced off."""

import re
from datetime import UTC, datetime
from io import BytesIO

from babel.dates import format_datetime
from flask import Blueprint, make_response, send_file
from flask_babel import format_decimal, get_locale, ngettext
from flask_babel import gettext as _
from markupsafe import Markup, escape

from portal.mime import Attachment
from portal.models import as_utc

bp = Blueprint("mail_view", __name__)
LINK = re.compile(r"https?://[^\s<>\"']+")
TRAILING = ".,;:!?)]}'\""  # ends a sentence around a link more often than the link itself
# A mail's HTML runs in its own opaque origin (sandbox, no allow-same-origin), with no script,
# no request to any server (remote images would tell the sender the mail was read), and only
# inside the portal's own pages. Links open in a new tab, outside the sandbox.
PREVIEW_POLICY = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)
PREVIEW_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"  # the iframe's, the same
NEW_TAB = '<base target="_blank">'
# After <head>, else <html>, else the doctype: never before the doctype (quirks mode).
OPENING = (
    re.compile(r"(?i)<head\b[^>]*>"),
    re.compile(r"(?i)<html\b[^>]*>"),
    re.compile(r"(?i)^\s*<!doctype[^>]*>"),
)


@bp.app_context_processor
def _sandbox() -> dict[str, str]:
    return {"preview_sandbox": PREVIEW_SANDBOX}


@bp.app_template_filter("linkify")
def linkify(text: str | None) -> Markup:
    """The text escaped, each http(s) address in it a link."""
    if not text:
        return Markup("")
    pieces, done = [], 0
    for found in LINK.finditer(text):
        url = found.group().rstrip(TRAILING)
        end = found.start() + len(url)
        pieces.append(escape(text[done : found.start()]))
        pieces.append(Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(url))
        done = end
    pieces.append(escape(text[done:]))
    return Markup("").join(pieces)


@bp.app_template_filter("bytes")
def human_size(size: int | None) -> str:
    """'5 bytes', '1 byte', '1.2 KB', '3.4 MB' (1 KB = 1024 bytes), in the page's language."""
    if size is None:
        return "—"
    if size < 1024:
        return ngettext("%(num)d byte", "%(num)d bytes", size)
    kib = size / 1024
    if kib < 1024:
        return _("%(size)s KB", size=format_decimal(kib, "0.0"))
    if kib < 1024 * 1024:
        return _("%(size)s MB", size=format_decimal(kib / 1024, "0.0"))
    return _("%(size)s GB", size=format_decimal(kib / 1024 / 1024, "0.0"))


@bp.app_template_filter("moment")
def moment(value: datetime | None) -> Markup:
    """A <time> in UTC, written for the page's language; app.js shows it in the reader's time zone.

    The datetime attribute and the title keep the same UTC form in every language: app.js reads
    the one, and the other is the exact time a reader can quote.
    """
    if value is None:
        return Markup("—")
    utc = as_utc(value)
    # Babel's own formatter, told the zone: Flask-Babel's would move it to BABEL_DEFAULT_TIMEZONE.
    written = format_datetime(utc, "medium", tzinfo=UTC, locale=get_locale() or "en")
    shown = _("%(moment)s UTC", moment=written)
    return Markup('<time datetime="{0}" title="{1}" data-local>{2}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), utc.strftime("%Y-%m-%d %H:%M:%S UTC"), shown
    )


def html_preview(markup: str):
    """A mail's HTML part, to be shown only in a sandboxed frame of the portal's own pages."""
    found = next((m for m in (p.search(markup) for p in OPENING) if m), None)
    at = found.end() if found else 0
    response = make_response(markup[:at] + NEW_TAB + markup[at:])
    response.mimetype = "text/html"
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def download(attachment: Attachment):
    """An attachment as a file to save, never a page of the portal."""
    response = send_file(
        BytesIO(attachment.data),
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.name,
    )
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
