"""Browser test: the DKIM section in Chromium under the CSP: generate, copy the record, activate."""

import pytest
from playwright.sync_api import Page, expect
from support.browser import assert_not_reloaded, log_in, mark_window, shot
from support.factories import configure

pytestmark = pytest.mark.browser


def test_an_admin_generates_a_key_copies_its_record_and_forces_it_on(
    page: Page, people, live_server
):
    configure(people.acme, sender_address="mail@acme.example.com")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    log_in(page, people.acme_admin.email)
    page.goto(f"/companies/{people.acme.id}/email")
    section = page.locator("#dkim-signing")
    expect(section.get_by_label("Sender domain")).to_have_value("acme.example.com")
    mark_window(page)
    section.get_by_label("Selector").fill("portal202612")
    section.get_by_role("button", name="Generate key").click()
    name = section.locator(".dkim-record-name")
    expect(name).to_have_text("portal202612._domainkey.acme.example.com")
    value = section.locator(".dkim-record-value").inner_text()
    assert value.startswith("v=DKIM1; k=rsa; p=MII")
    expect(section.get_by_role("button", name="Activate", exact=True)).to_be_disabled()
    section.get_by_role("button", name="Copy value").click()
    expect(section.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == value
    page.once("dialog", lambda dialog: dialog.accept())
    section.get_by_role("button", name="Activate anyway").click()
    expect(section.locator(".dkim-state")).to_contain_text("active: signing")
    expect(page.locator("#history")).to_contain_text("Activated without a matching DNS record")
    assert_not_reloaded(page)
    assert blocked == []
    # Last: Playwright hides the caret with an inline style, which a later swap would copy.
    shot(page, "dkim-active")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shot(page, "dkim-active-phone")
