"""The Email tab in a real browser: override the sender name only, then use the global one again."""

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.browser import choose_source, log_in, save, shot, shot_phone
from support.factories import global_with_password

from portal.extensions import db
from portal.models import MailConfig
from portal.settings.resolution import resolve

pytestmark = pytest.mark.browser


@pytest.fixture
def global_mail(app) -> MailConfig:
    return global_with_password()


def fits(page: Page, width: int) -> bool:
    """Whether the page, at this width, has nothing to scroll sideways to."""
    desktop = page.viewport_size
    page.set_viewport_size({"width": width, "height": 800})
    fitting = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size(desktop)
    return fitting


def source(page: Page, group: str):
    return page.locator(f"#group-{group} .source-badge")


def test_company_admin_overrides_the_sender_name_only_then_uses_the_global_one_again(
    page, people, global_mail
):
    acme = people.acme
    log_in(page, people.acme_admin.email)
    expect(page).to_have_url(f"/companies/{acme.id}/email")
    for group in ("server", "auth", "sender", "delivery"):
        expect(source(page, group)).to_have_text("Global")
    shot(page, "acme-email-groups-global")
    shot_phone(page, "acme-email-groups-global-phone")

    choose_source(page, "sender", "Override")
    expect(page.get_by_label("Sender name")).to_have_value("Example")
    page.get_by_label("Sender name").fill("Acme Billing")
    assert save(page).status == 200
    expect(page.get_by_role("status")).to_have_text("Mail settings saved.")

    page.reload()
    expect(source(page, "sender")).to_have_text("This company")
    for group in ("server", "auth", "delivery"):
        expect(source(page, group)).to_have_text("Global")
    expect(page.get_by_label("Sender name")).to_have_value("Acme Billing")
    host = page.locator('fieldset[data-group="server"] [data-field="host"]')
    expect(host).to_contain_text("smtp.example.com")
    expect(host.locator(".source-badge")).to_have_text("Global")
    expect(page.get_by_label("Host", exact=True)).to_have_count(0)
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    shot(page, "acme-email-sender-overridden")
    shot_phone(page, "acme-email-sender-overridden-phone")
    assert fits(page, 360), "the tab scrolls sideways at 360 px"
    db.session.expire_all()
    assert resolve(acme).sender_name == "Acme Billing"
    assert resolve(acme).password_encrypted == global_mail.password_encrypted

    choose_source(page, "sender", "Use global")
    expect(page.get_by_label("Sender name")).to_have_count(0)
    assert save(page).status == 200
    expect(source(page, "sender")).to_have_text("Global")
    expect(page.locator('[data-field="sender_name"]')).to_contain_text("Example")
    latest = page.locator("#history tbody tr").first
    expect(latest.locator("li", has_text="Own sender settings")).to_contain_text("on → off")
    shot(page, "acme-email-sender-global-again")
    db.session.expire_all()
    own = db.session.scalar(select(MailConfig).where(MailConfig.company_id == acme.id))
    assert own.override_sender is False and resolve(acme).sender_name == "Example"


def test_overriding_the_server_brings_the_companys_own_authentication(page, people, global_mail):
    log_in(page, people.acme_admin.email)
    choose_source(page, "server", "Override")
    expect(source(page, "auth")).to_have_text("This company")
    expect(page.locator("#group-auth")).to_contain_text("the global password is never sent")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    shot(page, "acme-email-server-overridden")
    shot_phone(page, "acme-email-server-overridden-phone")
