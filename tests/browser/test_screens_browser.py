"""Browser test of the look: every screen fits a desktop and a phone, with its screenshots."""

from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from support.browser import log_in, shot
from support.factories import fill_screens

from portal import accounts, catcher
from portal.extensions import db

pytestmark = pytest.mark.browser
WIDTHS = (1280, 390, 360)
# A page scrolls sideways when the document is wider than the window.
SCROLLS_SIDEWAYS = "() => document.documentElement.scrollWidth > window.innerWidth"
# Resolves once the element's top edge has come to rest within `limit` px of the window's top.
ARRIVED = """(element, limit) => new Promise((resolve, reject) => {
  const started = performance.now();
  const look = () => {
    const top = element.getBoundingClientRect().top;
    if (top >= 0 && top < limit) resolve(top);
    else if (performance.now() - started > 3000) reject(new Error(`its top stays at ${top} px`));
    else requestAnimationFrame(look);
  };
  look();
})"""
SCROLL_TO_TOP = "(e) => e.scrollIntoView({block: 'start', behavior: 'instant'})"
CAUGHT = (
    "X-Envelope-To: ann@example.org\r\nFrom: Portal <noreply@example.com>\r\n"
    "To: ann@example.org\r\nSubject: A mail the catcher kept\r\n"
    "Date: Thu, 03 Dec 2026 07:00:00 +0000\r\n\r\nHello Ann, this is the body.\r\n"
)


@dataclass(frozen=True)
class Screen:
    name: str
    path: str


@pytest.fixture
def filled(app, people):
    """Something on every screen: a mail in the log, a DKIM key, an API key, a caught mail."""
    mail = fill_screens(people)
    db.session.commit()
    caught = catcher.caught_dir(app.instance_path)
    caught.mkdir(parents=True, exist_ok=True)
    (caught / "1796281200000000000-1.eml").write_text(CAUGHT)
    return mail


def fits_every_width(page: Page, name: str) -> None:
    """At each width the page does not scroll sideways; screenshots at 1280 and 390 px."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert not page.evaluate(SCROLLS_SIDEWAYS), f"{name} scrolls sideways at {width} px"
        if width != 360:
            shot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def visit(page: Page, screen: Screen) -> None:
    response = page.goto(screen.path)
    assert response is not None and response.status < 500, screen
    fits_every_width(page, screen.name)


def test_the_logged_out_screens_fit_every_width(page, people):
    token = accounts.password_token(people.acme_admin)
    for screen in (
        Screen("login", "/login"),
        Screen("forgot-password", "/forgot-password"),
        Screen("set-password", f"/set-password/{token}"),
        Screen("link-invalid", "/set-password/not-a-token"),
        Screen("not-found", "/no-such-page"),
    ):
        visit(page, screen)
    page.goto("/login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".field-error").first).to_be_visible()
    fits_every_width(page, "login-invalid")


def test_the_superusers_screens_fit_every_width(page, people, filled):
    acme = people.acme.id
    log_in(page, people.superuser.email)
    for screen in (
        Screen("companies", "/companies"),
        Screen("company-admins", f"/companies/{acme}/admins"),
        Screen("settings-mail", "/settings/mail"),
        Screen("company-email", f"/companies/{acme}/email"),
        Screen("company-email-inherited", f"/companies/{people.globex.id}/email"),
        Screen("company-maillog", f"/companies/{acme}/mail"),
        Screen("company-api-keys", f"/companies/{acme}/api-keys"),
        Screen("maillog", "/mail"),
        Screen("maillog-detail", f"/mail/{filled.id}"),
        Screen("dashboard", "/dashboard"),
        Screen("caught", "/settings/mail/caught"),
        Screen("caught-mail", "/settings/mail/caught/1796281200000000000-1.eml"),
        Screen("account-superuser", "/account"),
        Screen("other-company-not-found", "/companies/999999/email"),
    ):
        visit(page, screen)


def test_the_company_admins_screens_fit_every_width(page, people, filled):
    acme = people.acme.id
    log_in(page, people.acme_admin.email)
    for screen in (
        Screen("acme-email", f"/companies/{acme}/email"),
        Screen("acme-maillog", f"/companies/{acme}/mail"),
        Screen("acme-maillog-detail", f"/mail/{filled.id}"),
        Screen("acme-api-keys", f"/companies/{acme}/api-keys"),
        Screen("account", "/account"),
        Screen("acme-forbidden", f"/companies/{people.globex.id}/email"),
    ):
        visit(page, screen)


def test_every_page_links_the_favicon_it_serves(page, people):
    page.goto("/login")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href == "/static/favicon.svg"
    icon = page.request.get(href)
    assert icon.status == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in icon.text()
    logo = page.locator(".brand img")
    expect(logo).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth > 0", logo.element_handle())


@pytest.mark.parametrize("width", [1280, 390])
def test_the_section_links_jump_to_each_section_of_the_mail_form(page, people, width):
    page.set_viewport_size({"width": width, "height": 800})
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    nav = page.get_by_role("navigation", name="Sections of this form")
    sections = ("Delivery", "Server", "Network", "Test connection", "Authentication", "Sender")
    for name in sections:
        nav.get_by_role("link", name=name, exact=True).click()
        legend = page.locator(f"legend:text-is('{name}')")
        section = page.locator("#mail-form > fieldset", has=legend)
        expect(section).to_be_in_viewport()
        # The jump may glide (smooth scrolling): wait until the section's top is near the top.
        section.evaluate(ARRIVED, 200)
        assert section.evaluate("(e) => location.hash === '#' + e.id")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_save_bar_stays_in_view_while_the_long_form_scrolls(page, people, width):
    page.set_viewport_size({"width": width, "height": 700})
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    save = page.get_by_role("button", name="Save", exact=True)
    height = page.evaluate("() => window.innerHeight")
    for part in ("#field-host", "#field-reply_to", "#field-egress_allowlist", "#field-footer_html"):
        page.locator(part).evaluate(SCROLL_TO_TOP)
        box = save.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, part
        expect(save).to_be_in_viewport()
    shot(page, f"settings-mail-scrolled-{width}")
