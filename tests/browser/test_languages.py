"""Browser test of the languages: every screen, in every language, shows no English left."""

import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Page
from support.browser import log_in
from support.catalogs import TRANSLATED
from support.catalogs import read as read_catalog
from support.factories import fill_screens
from support.languages import english_left, read, render

from portal import catcher
from portal.extensions import db
from portal.i18n import DEFAULT_LANGUAGE, LANGUAGES
from portal.models import AuditEntry, User, utcnow

pytestmark = pytest.mark.browser
CAUGHT_NAME = "1796281200000000000-1.eml"
CAUGHT = (
    "X-Envelope-To: ann@example.org\r\nFrom: Portal <noreply@example.com>\r\n"
    "To: ann@example.org\r\nSubject: A mail the catcher kept\r\n"
    "Date: Thu, 03 Dec 2026 07:00:00 +0000\r\n\r\nHello Ann, this is the body.\r\n"
)
# What the test itself wrote into the database and the catcher: data, never translated.
SEEDED = (
    "Acme Ltd",
    "Globex Corp",
    "Globex",
    "root",
    "admin",
    "Portal",
    "Welcome aboard",
    "Hi Ann",
    "Shop backend",
    "shop",
    "portal1",
    "A mail the catcher kept",
    "Hello Ann, this is the body.",
)
# Stands for a sentence somebody adds to a template without marking it.
UNMARKED = "Queued mails wait here until the worker delivers them."
ADD_UNMARKED = f"""() => {{
  const p = document.createElement("p");
  p.textContent = {UNMARKED!r};
  document.querySelector("main").append(p);
}}"""


@dataclass(frozen=True)
class Screen:
    name: str
    path: str


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the screenshots for a human to look at go: printed by the test."""
    return tmp_path_factory.mktemp("languages")


@pytest.fixture
def seeded(app, people):
    """Something on every screen: mails, DKIM keys, an API key, history, a caught mail."""
    mail = fill_screens(people)
    for minutes, (action, changes, company) in enumerate(
        [
            ("mail_settings.update", {"port": {"old": 25, "new": 587}}, None),
            ("mail_settings.update", {"port": {"old": 25, "new": 587}}, people.acme),
            ("apikey.create", {"name": {"old": None, "new": "shop"}}, people.acme),
            ("company.rename", {"name": {"old": "Globex", "new": "Globex Corp"}}, people.globex),
        ]
    ):
        db.session.add(
            AuditEntry(
                action=action,
                changes=changes,
                company_id=company.id if company else None,
                actor_id=people.superuser.id,
                created_at=utcnow() - timedelta(minutes=minutes),
            )
        )
    db.session.commit()
    caught = catcher.caught_dir(app.instance_path)
    caught.mkdir(parents=True, exist_ok=True)
    (caught / CAUGHT_NAME).write_text(CAUGHT)
    yield mail
    (caught / CAUGHT_NAME).unlink()


def speak(user: User, code: str) -> None:
    """Set the user's language; the next page they load is in it. Commits."""
    user.language = code
    db.session.commit()


class Survey:
    """One language's walk through the screens, each rendered in English and in the language."""

    def __init__(self, page: Page, code: str, seeded: tuple[str, ...]):
        self.page, self.code, self.seeded = page, code, seeded
        self.report: list[str] = []
        self.screens: list[str] = []
        self.listed: set[str] = set()  # a top bar's English is listed on its first screen only

    def compare(self, screen: Screen, speak_in) -> None:
        speak_in(DEFAULT_LANGUAGE)
        english = render(self.page, screen.path)
        speak_in(self.code)
        shown = render(self.page, screen.path)
        self.screens.append(screen.name)
        # Not vacuous: the English page has English to miss, and the page was really rendered.
        assert english_left(self.code, english, english, self.seeded), (
            f"{screen.name}: the English rendering shows no English to compare"
        )
        found = english_left(self.code, english, shown, self.seeded)
        if found:
            self.report.append(self.lines(screen, found, same=shown.texts == english.texts))

    def lines(self, screen: Screen, found: dict[str, str], same: bool) -> str:
        new = {fragment: why for fragment, why in found.items() if fragment not in self.listed}
        again = len(found) - len(new)
        self.listed |= new.keys()
        lines = [
            f"  {screen.name} ({screen.path}){': reads exactly as in English' if same else ''}:"
        ]
        lines += [f"    {fragment!r}  [{why}]" for fragment, why in new.items()]
        if again:
            lines.append(f"    ...and {again} listed on a screen above")
        return "\n".join(lines)


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_screen_shows_no_english_in_the_users_language(code, page, people, seeded, shots):
    started = time.monotonic()
    seeded_data = (*SEEDED, *(u.email for u in (people.superuser, people.acme_admin)))
    survey = Survey(page, code, seeded_data)
    acme = people.acme.id

    def browser_speaks(language: str) -> None:
        page.set_extra_http_headers({"Accept-Language": language.replace("_", "-")})

    for screen in (Screen("login", "/login"), Screen("forgot-password", "/forgot-password")):
        survey.compare(screen, browser_speaks)
    # Logged in, the user's own choice decides: the browser keeps asking for English.
    browser_speaks(DEFAULT_LANGUAGE)
    speak(people.superuser, DEFAULT_LANGUAGE)
    log_in(page, people.superuser.email)
    for screen in (
        Screen("companies", "/companies"),
        Screen("company-email", f"/companies/{acme}/email"),
        Screen("company-maillog", f"/companies/{acme}/mail"),
        Screen("company-api-keys", f"/companies/{acme}/api-keys"),
        Screen("company-history", f"/companies/{acme}/history"),
        Screen("company-admins", f"/companies/{acme}/admins"),
        Screen("settings-mail", "/settings/mail"),
        Screen("maillog", "/mail"),
        Screen("maillog-detail", f"/mail/{seeded.id}"),
        Screen("history", "/settings/history"),
        Screen("dashboard", "/dashboard"),
        Screen("caught", "/settings/mail/caught"),
        Screen("account", "/account"),
    ):
        survey.compare(screen, lambda language: speak(people.superuser, language))
        if screen.name == "settings-mail":
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(path=shots / f"settings-mail-{code}-{width}.png", full_page=True)
            page.set_viewport_size({"width": 1280, "height": 900})
    page.context.clear_cookies()
    speak(people.acme_admin, DEFAULT_LANGUAGE)
    log_in(page, people.acme_admin.email)
    for screen in (
        Screen("acme-email", f"/companies/{acme}/email"),
        Screen("acme-maillog", f"/companies/{acme}/mail"),
    ):
        survey.compare(screen, lambda language: speak(people.acme_admin, language))
    took = time.monotonic() - started
    print(f"{code}: {len(survey.screens)} screens in {took:.0f} s; screenshots in {shots}")
    assert not survey.report, (
        f"English left in {code} ({LANGUAGES[code]}) on {len(survey.report)} of "
        f"{len(survey.screens)} screens; mark these strings or translate them:\n"
        + "\n".join(survey.report)
        + f"\n(screenshots of the mail settings: {shots})"
    )


def test_the_check_finds_english_marked_or_not_and_none_in_english_itself(page, people):
    speak(people.superuser, DEFAULT_LANGUAGE)
    log_in(page, people.superuser.email)
    english = render(page, "/account")
    page.evaluate(ADD_UNMARKED)
    english = read(page)
    # English compared with itself: nothing to report, though the English is all there.
    assert english_left(DEFAULT_LANGUAGE, english, english, SEEDED) == {}
    assert {"My account", UNMARKED} <= english.texts
    # The same English page standing in for Polish: its marked and its unmarked English.
    found = english_left("pl", english, english, (*SEEDED, people.superuser.email))
    assert found["My account"] == "in messages.pot"
    assert found[UNMARKED] == "not marked"
    assert not {"root", people.superuser.email} & found.keys()
    # The page really in Polish: the translated heading is not reported.
    speak(people.superuser, "pl")
    polish = render(page, "/account")
    heading = read_catalog("pl")["My account"].string
    assert heading in polish.texts
    found = english_left("pl", english, polish, (*SEEDED, people.superuser.email))
    assert heading not in found
