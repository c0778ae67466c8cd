"""The translation catalogs as the tests see them: compiled before a page renders, checked."""

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from portal.i18n import DEFAULT_LANGUAGE, LANGUAGES, TRANSLATIONS

ROOT = TRANSLATIONS.parent.parent
TRANSLATED = [code for code in LANGUAGES if code != DEFAULT_LANGUAGE]


def po_path(code: str) -> Path:
    return TRANSLATIONS / code / "LC_MESSAGES" / "messages.po"


def read(code: str):
    with po_path(code).open("rb") as handle:
        return read_po(handle, locale=code)


def compile_all() -> None:
    """Write each .mo that is missing or older than its .po (what `make test` does first)."""
    for code in TRANSLATED:
        po, mo = po_path(code), po_path(code).with_suffix(".mo")
        if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
            with mo.open("wb") as handle:
                write_mo(handle, read(code))


def extract(into: Path):
    """The English source strings, extracted as `make messages` does."""
    pot = into / "messages.pot"
    subprocess.run(
        [
            Path(sys.executable).parent / "pybabel",
            "--quiet",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "lazy_gettext",
            "-k",
            "_l",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    with pot.open("rb") as handle:
        return read_po(handle)
