"""Browser tests of the settings history and of the test mail sent through the queue."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from support.browser import assert_not_reloaded, log_in, mark_window, shot, shot_phone
from support.factories import configure, stored_mails
from support.smtp_servers import smtp_server

from portal import delivery
from portal.extensions import db
from portal.models import AuditEntry, utcnow

pytestmark = pytest.mark.browser


def _history(people, n: int) -> None:
    """n changes and tests across the scopes, a minute apart; commits."""
    kinds = [
        ("mail_settings.update", {"port": {"old": 25, "new": 587}, "password": "changed"}, None),
        ("mail_settings.test", {"server": "smtp.example.com:587", "result": "Delivered"}, None),
        ("apikey.create", {"name": {"old": None, "new": "shop"}}, people.acme),
        ("company.rename", {"name": {"old": "Globex", "new": "Globex Corp"}}, people.globex),
    ]
    start = utcnow() - timedelta(minutes=n)
    for i in range(n):
        action, changes, company = kinds[i % len(kinds)]
        db.session.add(
            AuditEntry(
                action=action,
                changes=changes,
                company_id=company.id if company else None,
                actor_id=people.superuser.id,
                created_at=start + timedelta(minutes=i),
            )
        )
    db.session.commit()


def _fits_360(page) -> None:
    desktop = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    page.set_viewport_size(desktop)


def test_the_history_pages_and_filters_without_reloading(page, people):
    _history(people, 30)
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    expect(page.get_by_role("button", name="Send a test mail through the queue")).to_be_visible()
    shot(page, "mail-global-history")
    shot_phone(page, "mail-global-history-phone")
    page.get_by_role("link", name="Full history").click()
    expect(page.get_by_role("heading", name="Settings history")).to_be_visible()
    entries = page.locator(".history-entry")
    expect(entries).to_have_count(25)
    expect(page.get_by_text("Mail settings changed").first).to_be_visible()
    expect(page.get_by_text("Password: changed").first).to_be_visible()
    shot(page, "history")
    shot_phone(page, "history-phone")
    _fits_360(page)
    mark_window(page)

    page.get_by_role("link", name="Older →").click()
    expect(entries).to_have_count(5)
    expect(page).to_have_url(re.compile(r"/settings/history\?page=2$"))
    page.get_by_role("link", name="← Newer").click()
    expect(entries).to_have_count(25)

    page.get_by_label("Kind").select_option("tests")
    expect(entries).to_have_count(8)
    expect(page.locator(".history-action")).to_have_text(["Connection tested"] * 8)
    page.get_by_label("Company").select_option(str(people.acme.id))
    expect(page.get_by_text("No entries match these filters.")).to_be_visible()
    assert_not_reloaded(page)


def test_a_company_admins_history_is_their_own(page, people):
    _history(people, 8)
    log_in(page, people.acme_admin.email)
    page.goto(f"/companies/{people.acme.id}/email")
    page.get_by_role("link", name="History", exact=True).click()
    expect(page.locator(".history-entry")).to_have_count(2)
    expect(page.locator(".history-action")).to_have_text(["API key created"] * 2)
    expect(page.get_by_label("Company", exact=True)).to_have_count(0)
    shot(page, "history-company")
    shot_phone(page, "history-company-phone")
    _fits_360(page)


def test_a_test_mail_through_the_queue_turns_sent_in_the_log(page, people):
    with smtp_server() as server:
        configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
        log_in(page, people.acme_admin.email)
        page.goto(f"/companies/{people.acme.id}/email")
        page.get_by_label("Send the queued test mail to").fill("ops@example.org")
        page.get_by_role("button", name="Send a test mail through the queue").click()
        panel = page.locator("#test-mail")
        expect(panel).to_contain_text("to ops@example.org")
        expect(panel.locator(".status")).to_have_text("queued")
        shot(page, "test-mail-queued")
        shot_phone(page, "test-mail-queued-phone")
        _fits_360(page)

        panel.get_by_role("link", name="See it in the mail log").click()
        [mail] = stored_mails()
        row = page.locator(f"#mail-row-{mail.id}")
        expect(row.locator(".status")).to_have_text("queued")
        expect(row.locator(".test-badge")).to_have_text("test")
        expect(page.get_by_label("Type")).to_have_value("tests")
        mark_window(page)

        delivery.deliver(mail.id)  # what the worker does with it

        expect(row.locator(".status")).to_have_text("sent", timeout=10_000)
        assert_not_reloaded(page)
        assert [m.mail_from for m in server.handler.messages] == ["mail@acme.example.com"]
        expect(page.locator("#connection-tests")).to_contain_text("No connection tests yet.")
        shot(page, "maillog-tests")
        # The log's table scrolls inside its card on a phone; the page itself does not.
        page.set_viewport_size({"width": 360, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        shot(page, "maillog-tests-phone")
