"""Browser test: every screen works in Chromium under the Content-Security-Policy, unreported."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from support.factories import mail_config

from portal import outbox
from portal.web.headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"  # the people fixture's password
# Chromium reports a blocked script, style or eval both as this event and in the console.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    """What Chromium reports against the policy while the test runs."""
    found: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)

    def listen(message) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation"):
            found.append(text)

    page.on("console", listen)
    yield found


@pytest.fixture
def queued_mail(people):
    """A mail waiting in Acme's log, so the open log polls for its state."""
    mail_config(
        host="127.0.0.1",
        port=2525,
        security="none",
        sender_address="noreply@example.com",
        sender_name="Portal",
        default_sender_enabled=True,
        timeout_seconds=5,
    )
    return outbox.send(people.acme, to=["ann@example.org"], subject="Polled", text="Hi")


def visit(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_screens_work_under_the_content_security_policy(page, people, violations, queued_mail):
    visit(page, "/login")
    page.get_by_label("Email", exact=True).fill(people.superuser.email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    visit(page, "/settings/mail")
    expect(page.get_by_role("heading", name="Settings → Mail")).to_be_visible()

    visit(page, f"/companies/{people.acme.id}/email")
    override = page.locator("#group-sender").get_by_label("Override", exact=True)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        override.check()
    assert answer.value.status == 200
    expect(page.locator("#group-sender").get_by_label("Override", exact=True)).to_be_checked()

    visit(page, f"/companies/{people.acme.id}/mail")
    row = page.locator(f"#mail-row-{queued_mail.id}")
    expect(row).to_contain_text("Polled")
    with page.expect_response(lambda r: "/mail/rows" in r.url, timeout=10_000) as polled:
        pass  # the log asks for the queued mail's state after 2 s
    assert polled.value.status == 200

    visit(page, "/mail")
    expect(row).to_contain_text("Polled")
    page.get_by_role("link", name="My account").click()
    expect(page.get_by_role("button", name="Log out everywhere")).to_be_visible()
    assert violations == []

    # The listener hears a violation when there is one: an inline style is refused.
    page.evaluate("document.head.appendChild(document.createElement('style')).textContent = 'p{}'")
    page.wait_for_timeout(200)
    assert any("style" in v for v in violations)
