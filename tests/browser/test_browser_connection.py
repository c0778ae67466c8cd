"""Browser test of Test connection: a company admin tests unsaved settings against a real server."""

import email
from email import policy

import pytest
from playwright.sync_api import expect
from support.browser import log_in, shot, switch_on
from support.factories import allow_test_server
from support.smtp_servers import RecordingHandler, smtp_server

from portal.delivery.connection_check import TEST_SUBJECT

pytestmark = pytest.mark.browser

STEPS = ["resolve", "connect", "greeting", "ehlo", "mail", "rcpt", "data", "accepted", "quit"]


@pytest.fixture
def slow_server(app):
    """An allowlisted server that takes 1.5 s to accept a mail, so the running state shows."""
    handler = RecordingHandler(data_delay=1.5)
    with smtp_server(handler) as running:
        allow_test_server(running.port)
        yield running


def test_company_admin_tests_the_connection(page, people, slow_server):
    log_in(page, people.acme_admin.email)
    expect(page).to_have_url(f"/companies/{people.acme.id}/email")
    switch_on(page, "Use company-specific mail settings")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(slow_server.port))
    page.get_by_label("SMTP timeout (seconds)").fill("10")
    page.get_by_label("Sender address").fill("mail@acme.example.com")
    recipient = page.get_by_label("Send the test mail to")
    expect(recipient).to_have_value(people.acme_admin.email)

    button = page.get_by_role("button", name="Test connection")
    button.click()
    expect(button).to_be_disabled()
    expect(page.get_by_text("Testing… this can take up to the SMTP timeout.")).to_be_visible()
    shot(page, "test-connection-running")

    result = page.locator("#test-connection")
    expect(result.get_by_text("Connection works.")).to_be_visible(timeout=15_000)
    expect(result.locator("li[data-step]")).to_have_count(len(STEPS))
    for name in STEPS:
        step = result.locator(f'li.ok[data-step="{name}"]')
        expect(step.locator(".mark")).to_have_text("✓")
    expect(result.locator("li.failed")).to_have_count(0)
    expect(button).to_be_enabled()
    expect(page.get_by_text("Testing…")).to_be_hidden()
    expect(page.locator("#history tbody tr").first).to_contain_text("mail_settings.test")
    shot(page, "test-connection")

    (arrived,) = slow_server.handler.messages
    assert arrived.mail_from == "mail@acme.example.com"
    assert arrived.rcpt_tos == [people.acme_admin.email]
    mail = email.message_from_bytes(arrived.data, policy=policy.default)
    assert mail["Subject"] == TEST_SUBJECT and "the company Acme Ltd" in mail.get_content()
