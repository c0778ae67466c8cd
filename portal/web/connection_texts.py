"""The connection test's English texts (marked N_ in the wire), said in the page's language.

The test's state in Redis and its audit row keep the English source; a page translates it when
it shows it. A text stored whole, its values already filled in (an audit row, a step's detail,
a result stored before the values were kept apart), is recognized by the catalog's sentence it
was made from, so old results read in the page's language too; one not recognized is shown as
it was stored.
"""

import re
from functools import lru_cache

from flask_babel import get_locale, get_translations, gettext

from portal.delivery.connection_check import OUTCOME_CANCELLED, OUTCOME_FAILED
from portal.wire.diagnosis import filled

PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])")
# A sentence is recognized by its words, not by its values alone ("%(host)s" matches anything).
MIN_WORDS_CHARS = 8


def said(text: str, params: dict[str, str] | None = None) -> str:
    """An English text in the page's language, with its values; `params` None: stored whole."""
    if params is None:
        return recognized(text)
    try:
        return gettext(text, **params)
    except (KeyError, ValueError, TypeError):  # a translation that lost a placeholder
        return filled(text, params)


def recognized(text: str) -> str:
    """A whole English sentence in the page's language, if the catalog knows what made it."""
    if not text or str(get_locale()) == "en":
        return text
    translated = gettext(text)
    if translated != text:
        return translated
    for template, pattern in _templates(id(get_translations())):
        found = pattern.fullmatch(text)
        if found:
            return said(template, _values(template, found))
    return text


def said_outcome(text: str) -> str:
    """An audit row's result ("failed at Authentication: The server refused ...") translated."""
    for template in (OUTCOME_FAILED, OUTCOME_CANCELLED):
        found = _pattern(template).fullmatch(text)
        if found:
            parts = {name: recognized(value) for name, value in found.groupdict().items()}
            return said(template, parts)
    return recognized(text)


def _values(template: str, found: re.Match) -> dict:
    numbers = {name for name, kind in PLACEHOLDER.findall(template) if kind == "d"}
    return {name: int(v) if name in numbers else v for name, v in found.groupdict().items()}


@lru_cache(maxsize=8)
def _templates(catalog_id: int) -> list[tuple[str, re.Pattern]]:
    """The catalog's sentences with values, most specific first (one cache per language)."""
    catalog = getattr(get_translations(), "_catalog", {})
    found = [
        msgid
        for msgid in catalog
        if isinstance(msgid, str)
        and PLACEHOLDER.search(msgid)
        and len(PLACEHOLDER.sub("", msgid).strip(" .,:;()")) >= MIN_WORDS_CHARS
    ]
    found.sort(key=lambda msgid: len(PLACEHOLDER.sub("", msgid)), reverse=True)
    return [(msgid, _pattern(msgid)) for msgid in found]


@lru_cache(maxsize=2048)
def _pattern(template: str) -> re.Pattern:
    """A regular expression matching the template with any values filled in."""
    parts, seen, start = [], set(), 0
    for placeholder in PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[start : placeholder.start()]))
        name, kind = placeholder.groups()
        if name in seen:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>.+?)" if kind == "s" else rf"(?P<{name}>-?\d+)")
            seen.add(name)
        start = placeholder.end()
    parts.append(re.escape(template[start:]))
    return re.compile("".join(parts), re.S)
