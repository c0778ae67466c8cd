"""Text as tenants type it: safe HTML footers, their plain text, single lines, addresses."""

import html
import re

import nh3
from email_validator import validate_email

CONTROL_CHARS = re.compile(r"[\r\n\x00]")  # would split an SMTP command or a header
BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6]|blockquote|table)>")
LINK = re.compile(r'(?is)<a\s[^>]*href="([^"]*)"[^>]*>(.*?)</a>')
TAG = re.compile(r"(?s)<[^>]+>")


def to_text(markup: str) -> str:
    """Plain text for an HTML fragment: block ends become line breaks, links keep their URL."""
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", markup)
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


def normalize_email(value: str) -> str:
    """Return the normalized address or raise EmailNotValidError."""
    return validate_email(value.strip(), check_deliverability=False).normalized


def duration_text(seconds: int) -> str:
    """'7 days', '1 hour', '30 minutes': how long a link lives, for people."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
