"""Text as tenants type it: safe HTML footers, their plain text, single lines, addresses."""

import html
import re
from collections.abc import Collection

import nh3
from email_validator import validate_email
from flask_babel import gettext as _
from flask_babel import ngettext

CONTROL_CHARS = re.compile(r"[\r\n\x00]")  # would split an SMTP command or a header
BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6]|blockquote|table|ul|ol|dl|dd|dt)>")
CELL_END = re.compile(r"(?i)</t[dh]>")
LIST_ITEM = re.compile(r"(?i)<li\b[^>]*>")
LINK = re.compile(r'(?is)<a\s[^>]*href="([^"]*)"[^>]*>(.*?)</a>')
TAG = re.compile(r"(?s)<[^>]+>")
# Elements whose content is never text for a reader: nh3 drops them whole, and every comment
# (Outlook's conditional ones included) with them.
NOT_TEXT = frozenset({"script", "style", "title", "template", "noscript"})
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Stands in for an internal domain while email-validator checks the part before the @.
PLACEHOLDER_DOMAIN = "example.com"


def to_text(markup: str) -> str:
    """Plain text for HTML: block ends become line breaks, cells are spaced, links keep their URL.

    The markup goes through nh3 first, so script, style, title and comments never reach the text.
    """
    text = nh3.clean(markup, clean_content_tags=set(NOT_TEXT), attributes={"a": {"href"}})
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = LIST_ITEM.sub("- ", CELL_END.sub(" ", text))
    text = html.unescape(TAG.sub("", BLOCK_END.sub("\n", text)))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text


def sanitize_footer(raw: str | None) -> tuple[str | None, str | None]:
    """Return the footer as safe HTML and the plain-text version derived from it."""
    if not raw or not raw.strip():
        return None, None
    clean = nh3.clean(raw.strip())
    return clean, to_text(clean) or None


def normalize_email(value: str, internal_domains: Collection[str] = ()) -> str:
    """Return the normalized address or raise EmailNotValidError, whose message says why.

    An address in one of `internal_domains` (or a subdomain) is accepted although its domain is
    special-use (empresa.local, .test): email-validator refuses those whatever it is told, so it
    checks the part before the @ and the list vouches for the domain.
    """
    value = value.strip()
    local, at, domain = value.rpartition("@")
    domain = domain.lower()
    if not at or not in_domains(domain, internal_domains):
        return validate_email(value, check_deliverability=False).normalized
    checked = validate_email(f"{local}@{PLACEHOLDER_DOMAIN}", check_deliverability=False)
    return f"{checked.local_part}@{domain}"


def in_domains(domain: str, domains: Collection[str]) -> bool:
    """Whether `domain` is one of `domains` or a subdomain of one (names in lower case)."""
    if len(domain) > 253 or not all(DOMAIN_LABEL.match(label) for label in domain.split(".")):
        return False
    return any(domain == d or domain.endswith("." + d) for d in domains)


def parse_domains(raw: str | None) -> tuple[str, ...]:
    """Domain names, one per line or separated by commas; ValueError names the first bad one."""
    found: list[str] = []
    for entry in re.split(r"[\s,]+", raw or ""):
        name = entry.strip().lower().removeprefix("@").removeprefix("*.").removesuffix(".")
        if not name:
            continue
        labels = name.split(".")
        if len(name) > 253 or not all(DOMAIN_LABEL.match(label) for label in labels):
            raise ValueError(
                _(
                    "Not a domain name: %(entry)s. Enter names such as empresa.local.",
                    entry=repr(entry),
                )
            )
        if labels[-1].isdigit():
            raise ValueError(
                _(
                    "Not a domain name: %(entry)s. Enter a name, not an IP address.",
                    entry=repr(entry),
                )
            )
        if name not in found:
            found.append(name)
    return tuple(found)


def duration_text(seconds: int) -> str:
    """'7 days', '1 hour', '30 minutes': how long a link lives, for people, in the current language.

    Outside an app context (or under `i18n.speaking("en")`) it is English, as stored text must be.
    """
    if seconds >= 86400 and seconds % 86400 == 0:
        return ngettext("%(num)d day", "%(num)d days", seconds // 86400)
    if seconds >= 3600 and seconds % 3600 == 0:
        return ngettext("%(num)d hour", "%(num)d hours", seconds // 3600)
    minutes = max(1, round(seconds / 60))
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)
