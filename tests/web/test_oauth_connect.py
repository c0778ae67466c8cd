"""OAuth2 on the mail settings pages: provider defaults, the client secret, Authorize's rules."""

import json
import re

import pytest
from markupsafe import escape
from sqlalchemy import func, select
from support.factories import mail_config
from support.forms import GLOBAL_URL, VALID, company_data, company_url, saved_global

from portal import crypto
from portal.delivery.connection_check import MSG_AUTHORIZE_FIRST
from portal.extensions import db
from portal.models import AuditEntry, MailConfig, OAuthGrant
from portal.settings.saving import MSG_PASSWORD_NEEDED, MSG_SECRET_AGAIN, MSG_SECRET_NEEDED
from portal.web.oauth_connect import MSG_SAVE_FIRST

AUTHORIZE = "/settings/mail/oauth/authorize"
SECRET = "client-secret-0123456789"
OAUTH = {
    **{k: v for k, v in VALID.items() if k != "password"},
    "auth_method": "oauth2",
    "username": "mailbox@example.com",
    "oauth_client_id": "portal-client",
    "oauth_client_secret": SECRET,
    "oauth_authorize_url": "https://id.example.com/authorize",
    "oauth_token_url": "https://id.example.com/token",
    "oauth_scopes": "mail.send offline_access",
}
GOOGLE = {
    "host": "smtp.gmail.com",
    "port": "587",
    "oauth_authorize_url": "https://accounts.google.com/o/oauth2/auth",
    "oauth_token_url": "https://oauth2.googleapis.com/token",
    "oauth_scopes": "https://mail.google.com/",
}
MICROSOFT = {
    "host": "smtp.office365.com",
    "port": "587",
    "oauth_authorize_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "oauth_token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "oauth_scopes": "https://outlook.office.com/SMTP.Send offline_access",
}
TYPED = {"host": "mail.mine.example", "port": "2525", "security": "none", "auth_enabled": "y"}


def shows(page: str, message: str) -> bool:
    return str(escape(message)) in page


def at_field(page: str, element_id: str) -> str:
    """The HTML of one field's box (field boxes hold no nested <div>)."""
    return page.split(f'id="{element_id}"', 1)[1].split("</div>", 1)[0]


def has_value(page: str, name: str, value: str) -> bool:
    inputs = re.findall(rf'<input [^>]*\bname="{name}"[^>]*>', page)
    return any(f'value="{escape(value)}"' in tag for tag in inputs)


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry))


@pytest.fixture
def saved(as_superuser) -> MailConfig:
    response = as_superuser.post(GLOBAL_URL, OAUTH, htmx=True)
    assert response.status_code == 200, response.text
    return saved_global()


def refresh(method: str, **typed) -> dict:
    return {**TYPED, **typed, "auth_method": method, "_refresh": "auth_method"}


# --- choosing a provider -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "expected"), [("google", GOOGLE), ("microsoft", MICROSOFT)])
def test_choosing_a_provider_fills_in_its_defaults(as_superuser, method, expected):
    response = as_superuser.post(GLOBAL_URL, refresh(method), htmx=True)
    assert response.status_code == 200
    for name, value in expected.items():
        assert has_value(response.text, name, value), name
    assert '<option selected value="starttls">' in response.text
    assert "Enter the" not in response.text  # a refresh validates nothing
    config = saved_global()
    assert config is None or config.host is None


def test_a_refresh_leaves_saved_settings_alone(as_superuser, saved):
    before = audit_count()
    response = as_superuser.post(GLOBAL_URL, {**OAUTH, **refresh("google")}, htmx=True)
    assert has_value(response.text, "host", "smtp.gmail.com")
    config = saved_global()
    assert (config.host, config.auth_method) == ("smtp.example.com", "oauth2")
    assert config.oauth_token_url == OAUTH["oauth_token_url"] and audit_count() == before


@pytest.mark.parametrize(
    "data",
    [
        refresh("oauth2", oauth_token_url="https://id.mine.example/token"),
        {**refresh("google", oauth_token_url="https://id.mine.example/token"), "_refresh": "1"},
    ],
    ids=["other-provider", "auth-toggle-refresh"],
)
def test_other_refreshes_keep_typed_values(as_superuser, data):
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 200
    assert has_value(response.text, "host", "mail.mine.example")
    assert has_value(response.text, "port", "2525")
    assert has_value(response.text, "oauth_token_url", "https://id.mine.example/token")
    assert "smtp.gmail.com" not in response.text


def test_company_admin_chooses_a_provider_on_the_email_tab(as_acme, people):
    data = company_data(auth_enabled="y", auth_method="microsoft", _refresh="auth_method")
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 200
    for name, value in MICROSOFT.items():
        assert has_value(response.text, name, value), name
    assert "replace <code>common</code> in the endpoints" in response.text
    db.session.expire_all()
    assert people.acme.mail_config is None and not people.acme.use_own_mail_settings


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("oauth_client_id", "", "Enter the client ID the provider gave your app."),
        ("oauth_client_secret", "", MSG_SECRET_NEEDED),
        ("oauth_token_url", "http://id.example.com/token", "Enter an https:// URL."),
        ("oauth_authorize_url", "id.example.com/authorize", "Enter an https:// URL."),
        (
            "oauth_authorize_url",
            "https://user:pass@id.example.com/authorize",
            "Enter the URL without user name, password or #fragment.",
        ),
        ("oauth_revoke_url", "https://id.example.com/revoke#x", "without user name, password"),
        ("oauth_scopes", "", "Enter the scopes that allow sending mail."),
        ("username", "mailbox", "Enter the mailbox's email address"),
        ("username", "", "Enter the mailbox address mail is sent from."),
        ("oauth_client_id", "portal-client\r\nX-Evil: 1", "Line breaks"),
    ],
)
def test_bad_oauth_input_is_refused_at_its_field(as_superuser, field, value, message):
    response = as_superuser.post(GLOBAL_URL, {**OAUTH, field: value}, htmx=True)
    assert response.status_code == 422
    box = "client-secret-control" if field == "oauth_client_secret" else f"field-{field}"
    assert shows(at_field(response.text, box), message)
    assert "Nothing was saved" in response.text and SECRET not in response.text
    config = saved_global()
    assert config is None or config.host is None
    assert audit_count() == 0


# --- the write-only client secret ----------------------------------------------------------


def test_client_secret_is_encrypted_and_never_shown(as_superuser, saved):
    assert crypto.decrypt(saved.oauth_client_secret_encrypted) == SECRET
    columns = [getattr(saved, c.key) for c in MailConfig.__table__.columns]
    assert not any(SECRET in str(value) for value in columns)
    (entry,) = db.session.scalars(select(AuditEntry)).all()
    assert entry.changes["client_secret"] == "changed" and SECRET not in json.dumps(entry.changes)
    page = as_superuser.get(GLOBAL_URL).text
    assert "A client secret is saved." in page
    assert SECRET not in page and saved.oauth_client_secret_encrypted not in page


def test_empty_secret_keeps_the_saved_one(as_superuser, saved):
    data = {**OAUTH, "oauth_client_secret": "", "sender_name": "New"}
    assert as_superuser.post(GLOBAL_URL, data, htmx=True).status_code == 200
    config = saved_global()
    assert config.sender_name == "New"
    assert crypto.decrypt(config.oauth_client_secret_encrypted) == SECRET


@pytest.mark.parametrize(
    ("field", "value"),
    [("oauth_token_url", "https://other.example.com/token"), ("oauth_client_id", "other-app")],
)
def test_secret_is_not_carried_to_another_client_or_endpoint(as_superuser, saved, field, value):
    data = {**OAUTH, field: value, "oauth_client_secret": ""}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert shows(at_field(response.text, "client-secret-control"), MSG_SECRET_AGAIN)
    assert getattr(saved_global(), field) == OAUTH[field]
    response = as_superuser.post(GLOBAL_URL, {**data, "oauth_client_secret": "new"}, htmx=True)
    assert response.status_code == 200
    assert crypto.decrypt(saved_global().oauth_client_secret_encrypted) == "new"


def test_back_to_password_removes_the_secret_and_needs_a_password(as_superuser, saved):
    password_form = {**VALID, "auth_method": "password", "username": "mailer"}
    response = as_superuser.post(GLOBAL_URL, {**password_form, "password": ""}, htmx=True)
    assert response.status_code == 422 and shows(response.text, MSG_PASSWORD_NEEDED)
    assert saved_global().has_client_secret
    assert as_superuser.post(GLOBAL_URL, password_form, htmx=True).status_code == 200
    config = saved_global()
    assert config.auth_method == "password" and config.oauth_client_secret_encrypted is None
    assert config.oauth_client_id is None and config.oauth_token_url is None
    latest = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert latest.changes["client_secret"] == "removed"
    assert latest.changes["password"] == "changed"


# --- Authorize and Disconnect ------------------------------------------------------------


def test_authorize_appears_once_the_settings_are_saved(as_superuser):
    unsaved = as_superuser.post(GLOBAL_URL, {**OAUTH, "_refresh": "1"}, htmx=True).text
    assert "Not connected. Save these settings, then authorize the mailbox." in unsaved
    assert 'id="authorize-button"' not in unsaved
    assert '<code id="redirect-uri">http://portal.test/oauth/callback</code>' in unsaved
    after_save = as_superuser.post(GLOBAL_URL, OAUTH, htmx=True).text
    page = as_superuser.get(GLOBAL_URL).text
    for shown in (after_save, page):
        assert 'id="authorize-button"' in shown and "Not connected." in shown
        assert "Save these settings, then authorize" not in shown
        assert 'id="disconnect-button"' not in shown


@pytest.mark.parametrize(
    "form", [None, {**VALID, "auth_method": "password"}], ids=["nothing-saved", "password"]
)
def test_authorize_before_saving_oauth_settings_is_refused(as_superuser, form):
    if form:
        assert as_superuser.post(GLOBAL_URL, form, htmx=True).status_code == 200
    response = as_superuser.post(AUTHORIZE, {}, htmx=True)
    assert response.status_code == 422 and shows(response.text, MSG_SAVE_FIRST)
    assert "HX-Redirect" not in response.headers


def test_company_authorize_needs_its_own_settings_in_use(as_acme, people):
    url = company_url(people.acme)
    assert as_acme.post(f"{url}/oauth/authorize", {}, htmx=True).status_code == 422
    form = {**company_data(), **{k: OAUTH[k] for k in OAUTH if k.startswith(("oauth", "auth"))}}
    assert as_acme.post(url, {**form, "username": OAUTH["username"]}, htmx=True).status_code == 200
    assert as_acme.post(url, {}, htmx=True).status_code == 200  # back to the global settings
    response = as_acme.post(f"{url}/oauth/authorize", {}, htmx=True)
    assert response.status_code == 422 and shows(response.text, MSG_SAVE_FIRST)


def connected_config(company=None) -> MailConfig:
    """A saved OAuth2 configuration with an authorization, written straight to the database."""
    if company:
        company.use_own_mail_settings = True
    return mail_config(
        company,
        host="smtp.example.com",
        auth_enabled=True,
        auth_method="oauth2",
        username="mailbox@example.com",
        oauth_client_id="portal-client",
        oauth_client_secret_encrypted=crypto.encrypt(SECRET),
        oauth_authorize_url=OAUTH["oauth_authorize_url"],
        oauth_token_url=OAUTH["oauth_token_url"],
        oauth_scopes=OAUTH["oauth_scopes"],
        grant=OAuthGrant(connected_as="mailbox@example.com", refresh_token_encrypted="x"),
    )


@pytest.mark.parametrize(
    ("target", "action", "status"),
    [
        ("globex", "authorize", 404),
        ("globex", "disconnect", 404),
        ("global", "authorize", 403),
        ("global", "disconnect", 403),
    ],
)
def test_company_admin_cannot_touch_other_authorizations(as_acme, people, target, action, status):
    company = people.globex if target == "globex" else None
    connected_config(company)
    base = company_url(company) if company else "/settings/mail"
    response = as_acme.post(f"{base}/oauth/{action}", {}, htmx=True)
    assert response.status_code == status
    assert "HX-Redirect" not in response.headers
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(OAuthGrant)) == 1
    assert audit_count() == 0


# --- Test connection -----------------------------------------------------------------------


@pytest.mark.parametrize("save_first", [False, True], ids=["unsaved", "saved-not-authorized"])
def test_connection_test_needs_an_authorized_mailbox(as_superuser, save_first):
    if save_first:
        assert as_superuser.post(GLOBAL_URL, OAUTH, htmx=True).status_code == 200
    data = {**OAUTH, "test_recipient": "someone@example.com"}
    response = as_superuser.post("/settings/mail/test", data, htmx=True)
    assert response.status_code == 422 and shows(response.text, MSG_AUTHORIZE_FIRST)
    tests = select(AuditEntry).where(AuditEntry.action == "mail_settings.test")
    assert db.session.scalar(tests) is None
