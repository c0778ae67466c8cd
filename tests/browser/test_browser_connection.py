"""Browser tests of Test connection: a real worker runs it, the panel shows each step live."""

import email
from email import policy

import pytest
from playwright.sync_api import Page, expect
from support.browser import choose_source, log_in, shot
from support.factories import allow_test_server
from support.held_servers import HOLD_SECONDS, PausingHandler, silent_server
from support.smtp_servers import smtp_server

from portal.delivery.connection_check import TEST_SUBJECT

pytestmark = pytest.mark.browser

STEPS = ["resolve", "connect", "greeting", "ehlo", "mail", "rcpt", "data", "accepted", "quit"]
WAIT_MS = 30_000  # a bound for a broken build, not a speed target


@pytest.fixture
def paused_server(app):
    """An allowlisted server that holds MAIL FROM until the test lets it go."""
    handler = PausingHandler()
    with smtp_server(handler) as running:
        allow_test_server(running.port)
        yield running
        handler.go.set()


@pytest.fixture
def worker(workers):
    """One real worker.py, running before the page is used."""
    return workers.start_ready()


def fill_company_settings(page: Page, people, port: int) -> None:
    log_in(page, people.acme_admin.email)
    expect(page).to_have_url(f"/companies/{people.acme.id}/email")
    choose_source(page, "server", "Override")
    choose_source(page, "sender", "Override")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(port))
    page.get_by_label("SMTP timeout (seconds)").fill("60")
    page.get_by_label("Sender address").fill("mail@acme.example.com")


def test_company_admin_watches_the_steps_arrive_then_the_result(
    page, people, paused_server, worker
):
    fill_company_settings(page, people, paused_server.port)
    recipient = page.get_by_label("Send the test mail to")
    expect(recipient).to_have_value(people.acme_admin.email)
    page.get_by_role("button", name="Test connection").click()

    result = page.locator("#test-connection")
    running = result.locator('li.running[data-step="mail"]')
    expect(running).to_be_visible(timeout=WAIT_MS)
    for name in STEPS[:4]:  # done while the server holds MAIL FROM
        expect(result.locator(f'li.ok[data-step="{name}"] .mark')).to_have_text("✓")
    expect(result.get_by_text("Connecting waits at most 15 s")).to_be_visible()
    expect(result.get_by_role("button", name="Cancel")).to_be_visible()
    expect(result.get_by_text("Connection works.")).to_have_count(0)
    shot(page, "test-connection-running")

    paused_server.handler.go.set()
    expect(result.get_by_text("Connection works.")).to_be_visible(timeout=WAIT_MS)
    expect(result.locator("li[data-step]")).to_have_count(len(STEPS))
    for name in STEPS:
        expect(result.locator(f'li.ok[data-step="{name}"] .mark')).to_have_text("✓")
    expect(result.locator("li.failed")).to_have_count(0)
    expect(result.get_by_text("The test took")).to_be_visible()
    expect(result.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#test-result[hx-trigger]")).to_have_count(0)  # the polling stopped
    # A test changes nothing: the full history has it, the short list beside the settings not.
    expect(page.locator("#history")).not_to_contain_text("Connection tested")
    shot(page, "test-connection")

    (arrived,) = paused_server.handler.messages
    assert arrived.mail_from == "mail@acme.example.com"
    assert arrived.rcpt_tos == [people.acme_admin.email]
    mail = email.message_from_bytes(arrived.data, policy=policy.default)
    assert mail["Subject"] == TEST_SUBJECT and "the company Acme Ltd" in mail.get_content()


def test_cancel_stops_a_test_waiting_for_the_greeting(page, people, app, worker):
    with silent_server() as silent:
        allow_test_server(silent.port)
        fill_company_settings(page, people, silent.port)
        page.get_by_role("button", name="Test connection").click()
        result = page.locator("#test-connection")
        expect(result.locator('li.running[data-step="greeting"]')).to_be_visible(timeout=WAIT_MS)
        assert silent.accepted.is_set() and not silent.closed.is_set()

        result.get_by_role("button", name="Cancel").click()
        expect(result.get_by_text("Cancelled.")).to_be_visible(timeout=WAIT_MS)
        expect(result.locator('li.failed[data-step="greeting"]')).to_have_count(1)
        shot(page, "test-connection-cancelled")
        assert silent.closed.wait(HOLD_SECONDS)  # the worker hung up on the server
