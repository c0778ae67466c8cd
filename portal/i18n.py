"""The language of each page and mail: the user's, the company's, the browser's, else English."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel, force_locale, get_locale
from flask_login import current_user

# The order of a language picker; the names are written in their own language on purpose.
LANGUAGES = {
    "en": "English",
    "pt_BR": "Português (Brasil)",
    "pl": "Polski",
    "ro": "Română",
    "cs": "Čeština",
}
DEFAULT_LANGUAGE = "en"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

babel = Babel()


def known(code: str | None) -> str | None:
    """The code itself when the portal has it, else None (an old or hand-edited value)."""
    return code if code in LANGUAGES else None


def _chosen(user) -> str | None:
    """The language set for a user on purpose: their own, else their company's default."""
    company = getattr(user, "company", None)
    return known(user.language) or known(company.default_language if company else None)


def language_of(user) -> str:
    """The language to write to a user in, with no browser: theirs, their company's, or English."""
    return (_chosen(user) if user is not None else None) or DEFAULT_LANGUAGE


def select_locale() -> str:
    """The locale of this request.

    A user's own choice first, then the company's default for its admins (chosen on purpose,
    so it wins over a browser's header), then Accept-Language, then English.
    """
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if current_user and current_user.is_authenticated:
        chosen = _chosen(current_user)
        if chosen:
            return chosen
    return _accepted(request.accept_languages)


def _accepted(accepted) -> str:
    """The browser's first language the portal speaks; a region it lacks takes a sibling (pt-PT).

    Each language the browser lists, best first, is matched whole (BCP 47 pt-BR to the catalog
    pt_BR), then by its primary subtag.
    """
    for value, _quality in accepted:  # werkzeug keeps them best first
        tag = value.lower()
        for wanted in (tag, tag.split("-")[0]):
            for code in LANGUAGES:
                if wanted in (code.replace("_", "-").lower(), code.split("_")[0]):
                    return code
    return DEFAULT_LANGUAGE


def page_language() -> str:
    """The page's language as <html lang> wants it: BCP 47 ("pt-BR"), not a locale name."""
    return str(get_locale() or DEFAULT_LANGUAGE).replace("_", "-")


@contextmanager
def speaking(code: str) -> Iterator[None]:
    """Render what is inside in one language (a system mail to its recipient)."""
    with force_locale(known(code) or DEFAULT_LANGUAGE):
        yield


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS),
        locale_selector=select_locale,
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, page_language=page_language)
