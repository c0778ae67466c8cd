"""Browser tests: a real Chromium drives the real app served on 127.0.0.1."""

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.browser import (
    assert_not_reloaded,
    choose_source,
    log_in,
    mark_window,
    save,
    shot,
    shot_phone,
    switch_on,
)
from support.factories import mail_config
from support.oauth_server import MAILBOX, oauth_provider
from support.smtp_servers import RecordingHandler, make_certs, server_context, smtp_server

from portal import crypto
from portal.config import DEFAULT_BASE_URL
from portal.extensions import db
from portal.models import Company, MailConfig, User

TIMEOUT_ERROR = "Enter a whole number from 10 to 180."
SESSIONS_ERROR = "Enter a whole number from 1 to 20."

pytestmark = pytest.mark.browser


@pytest.fixture
def global_mail(app) -> MailConfig:
    """A saved global configuration, so a company's form has something to prefill."""
    return mail_config(
        host="smtp.example.com",
        port=587,
        security="starttls",
        sender_address="noreply@example.com",
        timeout_seconds=30,
    )


def fresh(statement):
    """Read from the database after the server wrote to it, bypassing the session's cache."""
    db.session.expire_all()
    return db.session.scalar(statement)


def company_mail_config(company_id: int) -> MailConfig | None:
    return fresh(select(MailConfig).where(MailConfig.company_id == company_id))


def test_company_admin_sets_own_mail_settings(page, people, global_mail):
    acme_id = people.acme.id
    log_in(page, people.acme_admin.email)
    expect(page).to_have_url(f"/companies/{acme_id}/email")
    expect(page.locator("#group-server")).to_have_attribute("data-source", "global")
    shot(page, "acme-email-inherited")
    shot_phone(page, "acme-email-inherited-phone")

    mark_window(page)
    choose_source(page, "server", "Override")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.example.com")
    expect(page.get_by_label("Port", exact=True)).to_have_value("587")
    expect(page.get_by_label("Security", exact=True)).to_have_value("starttls")
    expect(page.get_by_label("SMTP timeout (seconds)")).to_have_value("30")
    expect(page.get_by_label("Parallel connections")).to_have_value("2")
    expect(page.get_by_label("User", exact=True)).to_be_hidden()
    shot(page, "acme-email-own-settings")
    shot_phone(page, "acme-email-own-settings-phone")

    switch_on(page, "Authentication")
    expect(page.get_by_label("User", exact=True)).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "acme-email-authentication")

    page.get_by_label("User", exact=True).fill("acme-mailer")
    page.get_by_label("Password", exact=True).fill("s3cret-smtp-pass")
    page.get_by_label("SMTP timeout (seconds)").fill("200")
    page.get_by_label("Parallel connections").fill("21")
    assert save(page).status == 422
    timeout_field = page.locator("#field-timeout_seconds")
    expect(timeout_field.get_by_role("alert")).to_have_text(TIMEOUT_ERROR)
    expect(page.get_by_label("SMTP timeout (seconds)")).to_have_attribute("aria-invalid", "true")
    sessions_field = page.locator("#field-max_sessions")
    expect(sessions_field.get_by_role("alert")).to_have_text(SESSIONS_ERROR)
    expect(page.get_by_label("Parallel connections")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "acme-email-timeout-error")
    shot_phone(page, "acme-email-timeout-error-phone")
    assert company_mail_config(acme_id) is None
    assert fresh(select(Company.use_own_mail_settings).where(Company.id == acme_id)) is False

    page.get_by_label("SMTP timeout (seconds)").fill("60")
    page.get_by_label("Parallel connections").fill("5")
    assert save(page).status == 200
    expect(page.get_by_role("status")).to_have_text("Mail settings saved.")
    shot(page, "acme-email-saved")

    page.reload()
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.example.com")
    expect(page.get_by_label("SMTP timeout (seconds)")).to_have_value("60")
    expect(page.get_by_label("Parallel connections")).to_have_value("5")
    expect(page.get_by_label("User", exact=True)).to_have_value("acme-mailer")
    expect(page.get_by_text("A password is saved.")).to_be_visible()
    latest = page.locator("#history tbody tr").first
    expect(latest).to_contain_text("Mail settings changed")
    expect(latest.locator("li", has_text="SMTP timeout")).to_contain_text("60")
    expect(latest.locator("li", has_text="Parallel connections")).to_contain_text("2 → 5")
    expect(latest.locator("li", has_text="Password")).to_contain_text("changed")
    shot(page, "acme-email-after-reload")

    config = company_mail_config(acme_id)
    assert (config.timeout_seconds, config.max_sessions, config.username) == (60, 5, "acme-mailer")
    assert config.password_encrypted and "s3cret-smtp-pass" not in config.password_encrypted
    assert crypto.decrypt(config.password_encrypted) == "s3cret-smtp-pass"


def test_superuser_edits_global_mail_settings(page, people):
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    port, security = page.get_by_label("Port", exact=True), page.get_by_label("Security")
    expect(port).to_have_value("25")
    expect(page.get_by_label("Parallel connections")).to_have_value("2")
    shot(page, "global-mail")
    shot_phone(page, "global-mail-phone")

    security.select_option(label="STARTTLS")
    expect(port).to_have_value("587")
    security.select_option(label="SSL/TLS")
    expect(port).to_have_value("465")
    port.fill("2525")
    security.select_option(label="STARTTLS")
    expect(port).to_have_value("2525")

    mark_window(page)
    switch_on(page, "Default sender")
    expect(page.get_by_label("Sender address")).to_be_visible()
    expect(page.get_by_label("Sender name")).to_be_visible()
    expect(port).to_have_value("2525")
    assert_not_reloaded(page)
    shot(page, "global-mail-default-sender")

    page.get_by_label("Host", exact=True).fill("smtp.example.com")
    page.get_by_label("Sender address").fill("not-an-address")
    assert save(page).status == 422
    sender_field = page.locator("#field-sender_address")
    expect(sender_field.get_by_role("alert")).to_contain_text("Enter a valid email address")
    expect(page.get_by_label("Sender address")).to_have_value("not-an-address")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.example.com")
    assert_not_reloaded(page)
    shot(page, "global-mail-invalid-sender")
    assert fresh(select(MailConfig.host).where(MailConfig.company_id.is_(None))) is None


def test_superuser_creates_company_and_invites_admin(page, chromium, people, live_server):
    log_in(page, people.superuser.email)
    expect(page).to_have_url("/companies")
    mark_window(page)
    page.get_by_placeholder("New company name").fill("Initech")
    page.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("status")).to_have_text("Company “Initech” created.")
    expect(page.get_by_role("link", name="Initech", exact=True)).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "companies-created")

    company_id = fresh(select(Company.id).where(Company.name == "Initech"))
    row = page.locator(f"#company-{company_id}")
    row.get_by_role("button", name="Edit").click()
    row.get_by_label("Company name").fill("Initech Ltd")
    shot(page, "companies-renaming")
    row.get_by_role("button", name="Save").click()
    expect(row.get_by_role("link", name="Initech Ltd")).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "companies-renamed")
    assert fresh(select(Company.name).where(Company.id == company_id)) == "Initech Ltd"

    row.get_by_role("link", name="Initech Ltd").click()
    page.get_by_role("link", name="Admins").click()
    expect(page.get_by_role("heading", name="Company admins")).to_be_visible()
    page.get_by_label("Email", exact=True).fill("boss@initech.example.com")
    page.get_by_label("Name", exact=True).fill("Bill")
    page.get_by_role("button", name="Invite or assign admin").click()
    invitation = page.get_by_role("status").locator("code")
    expect(invitation).to_contain_text(f"{DEFAULT_BASE_URL}/set-password/")  # the configured one
    expect(page.get_by_role("cell", name="boss@initech.example.com")).to_be_visible()
    shot(page, "company-admins-invited")
    link = invitation.inner_text()

    context = chromium.new_context()
    try:
        invited = context.new_page()
        invited.goto(live_server + urlsplit(link).path)
        expect(invited.get_by_text("For boss@initech.example.com.")).to_be_visible()
        shot(invited, "set-password")
        invited.get_by_label("New password").fill("a long new password")
        invited.get_by_label("Repeat the password").fill("a long new password")
        invited.get_by_role("button", name="Set password").click()
        expect(invited).to_have_url(f"{live_server}/companies/{company_id}/email")
        expect(invited.get_by_role("heading", name="Initech Ltd")).to_be_visible()
        expect(invited.get_by_role("link", name="Email")).to_have_attribute("aria-current", "page")
        shot(invited, "invited-admin-email-tab")
    finally:
        context.close()
    admin = fresh(select(User).where(User.email == "boss@initech.example.com"))
    assert admin.company_id == company_id and admin.password_hash.startswith("$argon2")


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


@pytest.fixture
def provider(certs):
    with oauth_provider(certs) as running:
        yield running


@pytest.fixture
def xoauth2_smtp(certs, provider):
    """A STARTTLS server that takes AUTH XOAUTH2 with the provider's access tokens only."""
    handler = RecordingHandler(xoauth2=provider.is_valid_access_token)
    with smtp_server(handler, starttls=server_context(certs.good), auth=True) as running:
        yield running


@pytest.fixture
def trusting_page(request, monkeypatch, app_config, certs, chromium) -> Iterator[Page]:
    """A page on a live server that trusts the test CA, as MAIL_CA_FILE would in production."""
    monkeypatch.setitem(app_config, "MAIL_CA_FILE", str(certs.ca))
    base_url = request.getfixturevalue("live_server")  # built from app_config only now
    context = chromium.new_context(base_url=base_url, ignore_https_errors=True)
    # The OAuth2 redirect URI carries the configured base URL: forward it to this server.
    context.route(
        f"{DEFAULT_BASE_URL}/**",
        lambda route: route.fulfill(
            status=302, headers={"Location": route.request.url.replace(DEFAULT_BASE_URL, base_url)}
        ),
    )
    yield context.new_page()
    context.close()


def settled(page: Page) -> None:
    """Wait until htmx has wired up the swapped-in form: until then its new controls are inert."""
    expect(page.locator("#mail-form.htmx-added")).to_have_count(0)


def test_superuser_connects_a_mailbox_with_oauth2(
    trusting_page, people, provider, xoauth2_smtp, workers, certs
):
    page, smtp_port = trusting_page, str(xoauth2_smtp.port)
    workers.env["MAIL_CA_FILE"] = str(certs.ca)  # the worker runs the connection test
    workers.start_ready()
    log_in(page, people.superuser.email)
    page.goto("/settings/mail")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Security").select_option(label="STARTTLS")
    page.get_by_label("Port", exact=True).fill(smtp_port)
    page.get_by_label("SMTP timeout (seconds)").fill("10")
    mark_window(page)
    switch_on(page, "Authentication")
    expect(page.get_by_label("Method")).to_be_visible()
    settled(page)
    page.get_by_label("Method").select_option(label="OAuth2 – other provider")
    expect(page.get_by_label("Mailbox address")).to_be_visible()
    settled(page)
    expect(page.get_by_label("Host", exact=True)).to_have_value("127.0.0.1")
    expect(page.get_by_text("Save these settings, then authorize the mailbox.")).to_be_visible()
    expect(page.locator("#authorize-button")).to_have_count(0)
    assert_not_reloaded(page)

    page.get_by_label("Mailbox address").fill(MAILBOX)
    page.get_by_label("Client ID").fill(provider.client_id)
    page.get_by_label("Client secret", exact=True).fill(provider.client_secret)
    page.get_by_label("Authorization endpoint").fill(provider.authorize_url)
    page.get_by_label("Token endpoint").fill(provider.token_url)
    page.get_by_label("Revocation endpoint").fill(provider.revoke_url)
    page.get_by_label("Scopes").fill("mail.send offline_access")
    page.get_by_label("Allowed internal relays").fill("127.0.0.1/32")
    provider_port = urlsplit(provider.base_url).port
    page.get_by_label("Additional SMTP ports").fill(f"{smtp_port},{provider_port}")
    shot(page, "oauth-filled")
    assert save(page).status == 200
    expect(page.get_by_text("Mail settings saved.")).to_be_visible()
    expect(page.get_by_text("A client secret is saved.")).to_be_visible()
    settled(page)
    assert provider.client_secret not in page.content()

    page.get_by_role("button", name="Authorize", exact=True).click()
    expect(page.get_by_text(f"Allow portal-client to send mail as {MAILBOX}?")).to_be_visible()
    shot(page, "oauth-consent")
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url("/settings/mail")
    expect(page.locator("#oauth-status")).to_contain_text(f"Connected as {MAILBOX}")
    expect(page.get_by_role("button", name="Authorize again")).to_be_visible()

    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-connection")
    expect(result.get_by_text("Connection works.")).to_be_visible(timeout=15_000)
    assert xoauth2_smtp.handler.connections[-1].auths == [(MAILBOX, True, True)]
    assert provider.client_secret not in page.content()
    shot(page, "oauth-connected")
