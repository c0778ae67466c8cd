"""Browser tests of what a page says after each htmx request, and where focus goes."""

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select
from support.browser import choose_source, log_in, shot, shot_phone, switch_on
from support.factories import allow_test_server
from support.held_servers import silent_server

from portal import crypto
from portal.delivery.connection_jobs import MSG_NO_QUEUE
from portal.extensions import db
from portal.models import Company, MailConfig
from portal.web import mail_settings

pytestmark = pytest.mark.browser

TOKEN_SECONDS = 5  # the form token's life on the server of the expiry test
WAIT_MS = 30_000  # a bound for a broken build, not a speed target
FOCUSED = "() => document.activeElement"


@pytest.fixture
def page_on(chromium, serve_live) -> Iterator[Callable[..., Page]]:
    """A page on a live server started with these config overrides."""
    contexts = []

    def open_page(**config) -> Page:
        context = chromium.new_context(base_url=serve_live(**config))
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def focused(page: Page):
    """The element that has the keyboard focus."""
    return page.locator("*:focus")


def fits_a_small_phone(page: Page) -> bool:
    """At 360 px wide the page does not scroll sideways."""
    desktop = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 780})
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size(desktop)
    return fits


def saved_config(company_id: int) -> MailConfig | None:
    db.session.expire_all()
    return db.session.scalar(select(MailConfig).where(MailConfig.company_id == company_id))


def own_settings(page: Page, people, *, password: str | None = None) -> None:
    """The Email tab of Acme with its own settings switched on and filled in."""
    log_in(page, people.acme_admin.email)
    expect(page).to_have_url(f"/companies/{people.acme.id}/email")
    choose_source(page, "server", "Override")  # authentication follows the server
    choose_source(page, "sender", "Override")
    if password:
        switch_on(page, "Authentication")
        page.get_by_label("User", exact=True).fill("acme-mailer")
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_label("Security", exact=True).select_option("starttls")
    page.get_by_label("Host", exact=True).fill("smtp.acme.example.com")
    page.get_by_label("Sender address").fill("mail@acme.example.com")


def press_save(page: Page) -> None:
    page.get_by_role("button", name="Save").click()


def test_an_expired_page_keeps_what_was_typed_and_saves_it_after_a_refresh(page_on, people):
    page = page_on(WTF_CSRF_TIME_LIMIT=TOKEN_SECONDS)
    own_settings(page, people, password="typed-before-expiry")
    time.sleep(TOKEN_SECONDS + 1.5)  # whole seconds: older than the limit, not equal

    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        press_save(page)
    assert refused.value.status == 400
    problem = page.locator("#mail-form .request-problem")
    expect(problem).to_contain_text("This page expired.")
    expect(problem).to_contain_text("What you typed is still here")
    expect(problem).to_have_attribute("role", "alert")
    expect(focused(page)).to_have_class("request-problem")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.acme.example.com")
    expect(page.get_by_label("Password", exact=True)).to_have_value("typed-before-expiry")
    assert saved_config(people.acme.id) is None
    shot(page, "feedback-page-expired")
    shot_phone(page, "feedback-page-expired-phone")
    assert fits_a_small_phone(page)

    with page.expect_response(lambda r: r.request.method == "POST") as saved:
        problem.get_by_role("button", name="Refresh and keep my changes").click()
    assert saved.value.status == 200
    expect(focused(page)).to_have_text("Mail settings saved.")
    expect(page.locator(".request-problem")).to_have_count(0)
    config = saved_config(people.acme.id)
    assert (config.host, config.username) == ("smtp.acme.example.com", "acme-mailer")
    assert crypto.decrypt(config.password_encrypted) == "typed-before-expiry"
    assert "typed-before-expiry" not in page.content()  # the saved password is not shown
    shot(page, "feedback-page-expired-saved")


def test_a_page_whose_login_ended_says_so_and_saves_after_logging_in_again(page, people):
    own_settings(page, people)
    page.context.clear_cookies()  # the session ended (its cookie expired) while the page was open
    press_save(page)
    problem = page.locator("#mail-form .request-problem")
    expect(problem).to_contain_text("This page expired.")
    problem.get_by_role("button", name="Refresh and keep my changes").click()
    expect(problem).to_contain_text("Your login ended.")
    expect(problem.get_by_role("link", name="Log in again (new tab)")).to_have_attribute(
        "target", "_blank"
    )
    expect(focused(page)).to_have_class("request-problem")
    shot(page, "feedback-login-ended")
    assert saved_config(people.acme.id) is None

    other_tab = page.context.new_page()
    log_in(other_tab, people.acme_admin.email)
    other_tab.close()
    problem.get_by_role("button", name="Try again").click()
    expect(focused(page)).to_have_text("Mail settings saved.")
    assert saved_config(people.acme.id).host == "smtp.acme.example.com"


def test_a_server_error_says_so_in_place_and_saves_nothing(page, people, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")

    own_settings(page, people)
    monkeypatch.setattr(mail_settings, "apply", broken)  # a bug the server cannot be made to have
    with page.expect_response(lambda r: r.request.method == "POST") as failed:
        press_save(page)
    assert failed.value.status == 500
    problem = page.locator("#mail-form .request-problem")
    expect(problem).to_contain_text("Something went wrong on the server")
    expect(focused(page)).to_have_class("request-problem")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.acme.example.com")
    assert saved_config(people.acme.id) is None
    shot(page, "feedback-server-error")
    shot_phone(page, "feedback-server-error-phone")

    monkeypatch.undo()
    problem.get_by_role("button", name="Try again").click()
    expect(focused(page)).to_have_text("Mail settings saved.")
    assert saved_config(people.acme.id).host == "smtp.acme.example.com"


def test_a_proxy_answering_unavailable_and_a_dropped_connection_say_so(page, people):
    own_settings(page, people)
    # What a proxy in front of a restarting portal answers: its own page, no portal markup.
    unavailable = "<html><body><h1>503 Service Unavailable</h1></body></html>"

    def refuse(route: Route) -> None:
        if route.request.method != "POST":
            return route.fallback()
        return route.fulfill(status=503, content_type="text/html", body=unavailable)

    page.route("**/email", refuse)
    press_save(page)
    problem = page.locator("#mail-form .request-problem")
    expect(problem).to_contain_text("The portal is not available right now.")
    expect(page.get_by_text("503 Service Unavailable")).to_have_count(0)  # not swapped in
    expect(focused(page)).to_have_class("request-problem")
    shot(page, "feedback-unavailable")
    page.unroute("**/email")

    def drop(route: Route) -> None:
        if route.request.method != "POST":
            return route.fallback()
        return route.abort("connectionreset")

    page.route("**/email", drop)
    press_save(page)
    expect(problem).to_contain_text("The portal could not be reached.")
    expect(page.locator(".request-problem")).to_have_count(1)  # one message, said anew
    expect(focused(page)).to_have_class("request-problem")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.acme.example.com")
    shot(page, "feedback-dropped")
    shot_phone(page, "feedback-dropped-phone")
    assert saved_config(people.acme.id) is None

    page.unroute("**/email")
    problem.get_by_role("button", name="Try again").click()
    expect(focused(page)).to_have_text("Mail settings saved.")
    assert saved_config(people.acme.id).host == "smtp.acme.example.com"


def test_test_connection_refused_with_redis_down_says_why(page_on, people, server):
    # Nothing listens on port 1: Redis is down when the test would be queued.
    page = page_on(REDIS_URL="redis://127.0.0.1:1/0")
    allow_test_server(server.port)
    own_settings(page, people)
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_label("Port", exact=True).fill(str(server.port))
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.get_by_role("button", name="Test connection").click()
    assert refused.value.status == 503
    refusal = page.locator("#test-connection").get_by_role("alert")
    expect(refusal).to_have_text(MSG_NO_QUEUE)
    expect(focused(page)).to_have_text(MSG_NO_QUEUE)
    expect(page.get_by_role("button", name="Test connection")).to_be_enabled()
    shot(page, "feedback-test-no-redis")
    assert server.handler.connections == []


def test_focus_goes_to_the_error_summary_its_links_to_the_fields_then_to_saved(page, people):
    own_settings(page, people)
    page.get_by_label("SMTP timeout (seconds)").fill("200")
    page.get_by_label("Parallel connections").fill("21")
    press_save(page)
    summary = page.locator("#mail-form .error-summary")
    expect(focused(page)).to_have_class("error-summary")
    expect(summary).to_contain_text("Nothing was saved")
    links = summary.get_by_role("link")
    expect(links).to_have_text(
        [
            "SMTP timeout (seconds): Enter a whole number from 10 to 180.",
            "Parallel connections: Enter a whole number from 1 to 20.",
        ]
    )
    shot(page, "feedback-error-summary")
    shot_phone(page, "feedback-error-summary-phone")
    assert fits_a_small_phone(page)

    links.nth(1).click()
    expect(focused(page)).to_have_attribute("name", "max_sessions")
    links.first.click()
    expect(focused(page)).to_have_attribute("name", "timeout_seconds")
    page.keyboard.press("Control+a")
    page.keyboard.type("60")
    page.get_by_label("Parallel connections").fill("5")
    press_save(page)
    expect(focused(page)).to_have_text("Mail settings saved.")
    expect(focused(page)).to_have_attribute("role", "status")
    shot(page, "feedback-saved-focus")


def test_focus_after_the_company_and_api_key_forms(page, people):
    log_in(page, people.superuser.email)
    page.goto("/companies")
    page.get_by_role("button", name="Create company").click()
    summary = page.locator("#companies .error-summary")
    expect(focused(page)).to_have_class("error-summary")
    link = summary.get_by_role("link")
    expect(link).to_have_count(1)
    shot(page, "feedback-company-summary")
    shot_phone(page, "feedback-company-summary-phone")
    link.click()
    expect(focused(page)).to_have_attribute("name", "name")
    page.keyboard.type("Initech")
    page.keyboard.press("Enter")
    expect(focused(page)).to_have_text("Company “Initech” created.")
    db.session.expire_all()
    initech = db.session.scalar(select(Company).where(Company.name == "Initech"))

    page.goto(f"/companies/{initech.id}/api-keys")
    page.get_by_role("button", name="Create key").click()
    expect(focused(page)).to_have_class("error-summary")
    page.locator("#api-keys .error-summary").get_by_role("link").click()
    expect(focused(page)).to_have_attribute("name", "name")
    page.keyboard.type("billing")
    page.keyboard.press("Enter")
    expect(focused(page)).to_contain_text("Key created. Copy it now")


def test_test_connection_shows_step_elapsed_time_and_connect_bound_with_focus_on_it(
    page, people, workers
):
    workers.start_ready()
    with silent_server() as silent:
        allow_test_server(silent.port)
        own_settings(page, people)
        page.get_by_label("Security", exact=True).select_option("none")
        page.get_by_label("Port", exact=True).fill(str(silent.port))
        page.get_by_label("Host", exact=True).fill("127.0.0.1")
        page.get_by_role("button", name="Test connection").click()
        result = page.locator("#test-connection")
        expect(result.locator('li.running[data-step="greeting"]')).to_be_visible(timeout=WAIT_MS)
        expect(focused(page)).to_have_id("test-connection")
        expect(result.get_by_text("Connecting waits at most 15 s")).to_be_visible()
        elapsed = result.locator(".running-status .time.total")
        first = float(elapsed.inner_text().removesuffix(" s"))
        expect(elapsed).not_to_have_text(f"{first:.1f} s", timeout=WAIT_MS)  # it counts on
        assert float(elapsed.inner_text().removesuffix(" s")) > first
        expect(focused(page)).to_have_id("test-connection")  # the polls keep it there
        shot(page, "feedback-test-running")

        result.get_by_role("button", name="Cancel").click()
        expect(result.get_by_text("Cancelled.")).to_be_visible(timeout=WAIT_MS)
        expect(focused(page)).to_contain_text("Cancelled.")


def test_a_plain_form_sent_back_invalid_focuses_its_summary(page, people):
    page.goto("/login")
    page.get_by_role("button", name="Log in").click()
    summary = page.locator("main .error-summary")
    expect(focused(page)).to_have_class("error-summary")
    expect(summary).to_contain_text("Correct the fields marked below.")
    expect(summary).not_to_contain_text("saved")
    link = summary.get_by_role("link").first
    expect(link).to_contain_text("Email")
    link.click()
    expect(focused(page)).to_have_attribute("name", "email")
    shot(page, "feedback-login-summary")


def test_a_request_error_is_said_in_the_language_of_the_page(page, people):
    log_in(page, people.acme_admin.email)
    people.acme_admin.language = "pl"
    db.session.commit()
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "pl")
    save = page.locator("#mail-form button[type=submit].primary")

    def forbid(route: Route) -> None:
        if route.request.method != "POST":
            return route.fallback()
        return route.fulfill(status=403, content_type="text/html", body="<p>Forbidden</p>")

    page.route("**/email", forbid)
    save.click()
    problem = page.locator("#mail-form .request-problem")
    expect(problem).to_have_text(
        "Nie masz uprawnień do tej czynności. Twoje konto nie ma odpowiedniego uprawnienia lub "
        "zmieniło się logowanie. Odśwież stronę, aby zobaczyć dostępne czynności."
    )
    expect(focused(page)).to_have_class("request-problem")
    page.unroute("**/email")

    def drop(route: Route) -> None:
        if route.request.method != "POST":
            return route.fallback()
        return route.abort("connectionreset")

    page.route("**/email", drop)
    save.click()
    expect(problem).to_contain_text(
        "Nie można połączyć się z portalem. Sprawdź połączenie. Wpisane dane nadal tu są: "
        "spróbuj ponownie, gdy połączenie wróci."
    )
    expect(problem.get_by_role("button", name="Spróbuj ponownie")).to_be_visible()
    shot(page, "feedback-dropped-pl")
