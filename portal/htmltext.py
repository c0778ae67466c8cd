"""Safe HTML for tenant-typed footers, and the plain text derived from HTML."""

import html
import re

import nh3

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
