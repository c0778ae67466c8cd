"""Browser test: internal mail domains, trusted CA certificates, the redirect URI's Copy button."""

import pytest
from playwright.sync_api import Page, expect
from support.browser import (
    OVERFLOWING,
    assert_not_reloaded,
    log_in,
    mark_window,
    shot,
    shot_phone,
)
from support.factories import mail_config

from portal.extensions import db

pytestmark = pytest.mark.browser


def overflowing_at_360(page: Page) -> list[str]:
    desktop = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 780})
    found = page.evaluate(OVERFLOWING)  # the whole page, as every screen
    page.set_viewport_size(desktop)
    return found


def test_the_superuser_lists_an_internal_domain_and_trusts_an_internal_ca(
    page: Page, people, certs
):
    mail_config(host="smtp.example.com", port=587, security="starttls")
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    mark_window(page)
    form = page.locator("#mail-form")
    page.get_by_role("switch", name="Default sender", exact=True).click()
    form.get_by_label("Sender address").fill("ops@empresa.local")
    form.get_by_role("button", name="Save").click()
    sender = form.locator("#field-sender_address")
    expect(sender.get_by_role("alert")).to_contain_text("special-use or reserved name")

    form.get_by_label("Internal mail domains").fill("empresa.local")
    form.get_by_label("Trusted CA certificates").fill("not a certificate")
    form.get_by_role("button", name="Save").click()
    trusted = form.locator("#field-ca_bundle_pem")
    expect(trusted.get_by_role("alert")).to_contain_text("Not a PEM certificate")
    expect(sender.get_by_role("alert")).to_have_count(0)  # listed in the same save
    shot(page, "mail-trust-refused")

    form.get_by_label("Trusted CA certificates").fill("")
    form.get_by_label("Or upload a PEM file").set_input_files(str(certs.ca))
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_contain_text("Mail settings saved.")
    expect(trusted.locator("#ca-certificates")).to_contain_text("Portal Test CA, valid until")
    expect(form.get_by_label("Internal mail domains")).to_have_value("empresa.local")
    assert_not_reloaded(page)
    assert overflowing_at_360(page) == []
    trusted.scroll_into_view_if_needed()
    shot(page, "mail-trust-saved")
    shot_phone(page, "mail-trust-saved-phone")


def test_the_redirect_uri_is_copied(page: Page, people, live_server):
    mail_config(
        people.acme,
        host="smtp.gmail.com",
        port=587,
        security="starttls",
        auth_enabled=True,
        auth_method="google",
        username="mail@acme.example.com",
        sender_address="mail@acme.example.com",
    )
    people.acme.use_own_mail_settings = True
    db.session.commit()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    log_in(page, people.acme_admin.email)
    page.goto(f"/companies/{people.acme.id}/email")
    uri = page.locator("#redirect-uri").inner_text()
    assert "/oauth/" in uri, uri
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == uri
    assert overflowing_at_360(page) == []
    shot(page, "mail-oauth-redirect-copied")
    shot_phone(page, "mail-oauth-redirect-copied-phone")
