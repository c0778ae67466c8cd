"""English left on a page in another language: what the page shows against what the catalogs say."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from playwright.sync_api import Page

from portal.i18n import DEFAULT_LANGUAGE, LANGUAGES, TRANSLATIONS
from support import catalogs

ROOT = TRANSLATIONS.parent.parent
POT = TRANSLATIONS / "messages.pot"
# Words that stay as they are in every language: protocols and header names, and names
# written in their own language (the language picker's). Acronyms in capitals (UTC, TXT,
# ID) stay too: see _words.
UNTRANSLATED = ("SSL/TLS", "OAuth2", "OAuth", "Redis", "Message-ID", *LANGUAGES.values())
# The visible text of the page: its text nodes (not in code, pre, textarea, script), the
# labels a screen reader or a tooltip shows, the text of buttons made of inputs, the parts of
# the window's title. Closed <details> are opened first: their content is one click away.
# `blocks` are the whole text of the elements a sentence lives in, for a msgid with markup.
VISIBLE_TEXT = """() => {
  const AS_SENT = "#mail-headers dl";  // a mail's own headers: its data, in no one's language
  const SKIP = new Set(["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT", "CODE", "PRE", "TEXTAREA"]);
  const skipped = (e) => {
    for (let up = e; up; up = up.parentElement) if (SKIP.has(up.tagName)) return true;
    return !!e.closest(AS_SENT);
  };
  const visible = (e) => !!e && e.checkVisibility({checkVisibilityCSS: true});
  const iso = /^[0-9TZ:.+\\- ]+(UTC)?$/;
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const texts = document.title.split(" · ");  // "Page · Company · Mail portal": each its own
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const e = node.parentElement;
    if (!e || skipped(e)) continue;
    if (!visible(e.tagName === "OPTION" ? e.closest("select") : e)) continue;
    if (e.closest("time[datetime]") && iso.test(node.nodeValue.trim())) continue;
    texts.push(node.nodeValue);
  }
  const labelled = "[placeholder], [title], [aria-label], input[type=submit], input[type=button]";
  for (const e of document.body.querySelectorAll(labelled)) {
    if (skipped(e) || !visible(e)) continue;
    for (const name of ["placeholder", "title", "aria-label"]) {
      if (e.hasAttribute(name)) texts.push(e.getAttribute(name));
    }
    if (e.tagName === "INPUT" && ["submit", "button"].includes(e.type)) texts.push(e.value);
  }
  const sentences = "p, li, label, legend, h1, h2, h3, dt, dd, th, td, summary, button, a, caption";
  const blocks = [...document.body.querySelectorAll(sentences)]
    .filter((e) => visible(e) && !e.querySelector("code, pre") && !skipped(e))
    .map((e) => e.textContent);
  return {texts, blocks};
}"""
_PLACEHOLDER = re.compile(r"%\([^)]+\)[sd]|%[sd]")
_WORD = re.compile(r"[A-Za-z]{3,}")
_TAG = re.compile(r"<[^>]+>")
_EMAIL = re.compile(r"\S+@\S+")
_URL = re.compile(r"\w+://\S+")
_AROUND = " :;,.·•—–-→←()[]…*"  # what a template may put around a translated string


def normalise(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Rendering:
    """One page as a user sees it: its text fragments, and the sentences with markup inside."""

    texts: frozenset[str]
    blocks: frozenset[str]


def render(page: Page, path: str) -> Rendering:
    """Load the page and read it once htmx has loaded what it loads at once."""
    response = page.goto(path)
    assert response is not None and response.status < 500, f"{path}: {response and response.status}"
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    return read(page)


def read(page: Page) -> Rendering:
    """The page's visible text as it stands."""
    seen = page.evaluate(VISIBLE_TEXT)
    return Rendering(
        texts=frozenset(t for t in map(normalise, seen["texts"]) if t),
        blocks=frozenset(t for t in map(normalise, seen["blocks"]) if t),
    )


def _pattern(message: str) -> re.Pattern | None:
    """The msgid (or its translation) as a whole fragment, a placeholder matching any value.

    None when nothing but placeholders and punctuation would be left: it would match anything.
    """
    text = normalise(_TAG.sub("", message)).replace("%%", "%")
    parts = _PLACEHOLDER.split(text)
    if not any(_WORD.search(part) for part in parts):
        return None
    return re.compile("(.+?)".join(map(re.escape, parts)))


def _forms(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [form for form in value if form]
    return [value] if value else []


@dataclass(frozen=True)
class Catalog:
    """What one language's catalog says about the English source."""

    code: str
    # msgids shown translated in this language: on its page, their English is a mistake
    english: tuple[re.Pattern, ...]
    # the translations (the msgids themselves where the translator kept the English)
    translated: tuple[re.Pattern, ...]

    def is_translation(self, fragment: str) -> bool:
        return _matches(self.translated, fragment)

    def is_translated_english(self, fragment: str) -> bool:
        return _matches(self.english, fragment)


def _matches(patterns: Iterable[re.Pattern], fragment: str) -> bool:
    """The fragment is one of these strings, also when the page adds a colon or an arrow."""
    bare = fragment.strip(_AROUND)
    return any(p.fullmatch(fragment) or p.fullmatch(bare) for p in patterns)


def msgids() -> list[list[str]]:
    """The English source strings of messages.pot, each as its forms (singular, plural)."""
    with POT.open("rb") as handle:
        return [_forms(m.id) for m in read_po(handle) if m.id]


@cache
def vocabulary() -> frozenset[str]:
    """English words: those of the msgids, the templates and the portal's code.

    The templates and code hold the English nobody has marked yet, so it is caught too.
    """
    sources = [form for forms in msgids() for form in forms]
    for pattern, folder in (("*.html", ROOT / "templates"), ("*.py", ROOT / "portal")):
        sources += [path.read_text() for path in Path(folder).rglob(pattern)]
    return frozenset(word.lower() for text in sources for word in _WORD.findall(text))


@cache
def catalog(code: str) -> Catalog:
    english: list[re.Pattern] = []
    translated: list[re.Pattern] = []
    kept = {}
    if code != DEFAULT_LANGUAGE:
        kept = {
            tuple(_forms(m.id)): _forms(m.string)
            for m in catalogs.read(code)
            if m.id and not m.fuzzy
        }
    for forms in msgids():
        done = kept.get(tuple(forms), forms if code == DEFAULT_LANGUAGE else [])
        for form in done:
            if (found := _pattern(form)) is not None:
                translated.append(found)
        if set(done) != set(forms):
            english += [p for p in map(_pattern, forms) if p is not None]
    return Catalog(code, tuple(english), tuple(translated))


def _words(fragment: str, seeded: Iterable[str]) -> list[str]:
    """The English words of a fragment, once the test's own data and names that stay are gone."""
    text = _URL.sub(" ", _EMAIL.sub(" ", fragment))
    for value in sorted({*seeded, *UNTRANSLATED}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", " ", text)
    words = []
    for token in text.split():
        # hostnames, numbers, times, keys and paths are data; an acronym stays as it is
        if re.search(r"[\d_/=]|\w\.\w", token) or token.strip(".,:;()").isupper():
            continue
        words += [w for w in _WORD.findall(token) if w.lower() in vocabulary()]
    return words


def english_left(
    code: str, english: Rendering, shown: Rendering, seeded: Iterable[str]
) -> dict[str, str]:
    """The English fragments on the page `shown` in language `code`, each with why it counts.

    A fragment counts when its msgid is translated in `code` but the page shows the English,
    or when it reads the same as on the English page, holds English words, and is no
    translation in `code` (the translator may keep a word like "Status").
    """
    if code == DEFAULT_LANGUAGE:
        return {}
    words = catalog(code)
    found: dict[str, str] = {}
    for fragment in sorted(shown.texts | shown.blocks):
        if words.is_translation(fragment):
            continue
        if words.is_translated_english(fragment):
            found[fragment] = "in messages.pot"
        elif fragment in shown.texts and fragment in english.texts and _words(fragment, seeded):
            found[fragment] = "not marked"
    return found
