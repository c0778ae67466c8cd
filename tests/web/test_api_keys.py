"""The API keys tab: create (shown once, stored hashed), list, revoke, and who may do it."""

import hashlib
import re

import pytest
from sqlalchemy import select
from support.browser import SCREENSHOTS, log_in

from portal.extensions import db
from portal.keys import api_keys
from portal.models import ApiKey, AuditEntry

KEY = re.compile(r'id="new-api-key">(pk_[A-Za-z0-9_-]+)<')


@pytest.fixture
def as_globex(browser, people):
    browser.login(people.globex_admin.email)
    return browser


@pytest.fixture(params=["as_superuser", "as_acme"])
def acme_manager(request, people):
    """Everyone who may manage Acme's keys: the superuser and Acme's admin."""
    return request.getfixturevalue(request.param)


def url(company, key=None) -> str:
    base = f"/companies/{company.id}/api-keys"
    return f"{base}/{key.id}/revoke" if key is not None else base


def create_key(browser, company, name="Billing service") -> str:
    response = browser.post(url(company), {"name": name}, htmx=True)
    assert response.status_code == 200
    return KEY.search(response.text).group(1)


def test_create_shows_the_key_once_and_stores_only_its_hash(acme_manager, people):
    response = acme_manager.post(url(people.acme), {"name": "  Billing service "}, htmx=True)
    assert response.status_code == 200 and "shown only this once" in response.text
    token = KEY.search(response.text).group(1)
    assert len(token) > 40
    key = db.session.scalar(select(ApiKey))
    assert key.name == "Billing service" and key.company_id == people.acme.id
    assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert key.prefix == token[:8] and token not in (key.prefix, key.name, key.key_hash)

    page = acme_manager.get(url(people.acme)).text
    assert "Billing service" in page and f"{key.prefix}…" in page
    assert token not in page and "shown only this once" not in page
    assert token not in acme_manager.get(f"/companies/{people.acme.id}/email").text


def test_creation_is_audited_without_the_key(as_acme, people):
    token = create_key(as_acme, people.acme)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "apikey.create"))
    assert entry.changes == {"name": {"old": None, "new": "Billing service"}}
    assert entry.company_id == people.acme.id and entry.actor_id == people.acme_admin.id
    assert token not in str(entry.changes)


def test_creation_without_htmx_shows_the_full_page_with_the_key(as_acme, people):
    response = as_acme.post(url(people.acme), {"name": "Deploy"})
    assert response.status_code == 200 and "<html" in response.text
    assert KEY.search(response.text) is not None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Name the key"),
        ("   ", "Name the key"),
        ("x" * 121, "Use at most 120 characters."),
        ("two\nlines", "Line breaks and NUL characters are not allowed here."),
    ],
)
def test_bad_names_are_refused(as_acme, people, name, message):
    response = as_acme.post(url(people.acme), {"name": name}, htmx=True)
    assert response.status_code == 422 and message in response.text
    assert KEY.search(response.text) is None
    assert db.session.scalar(select(ApiKey)) is None


def test_revoke(acme_manager, people):
    create_key(acme_manager, people.acme)
    key = db.session.scalar(select(ApiKey))
    response = acme_manager.post(url(people.acme, key), {}, htmx=True)
    assert response.status_code == 200 and "revoked" in response.text
    db.session.expire_all()
    assert key.revoked_at is not None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "apikey.revoke"))
    assert entry.changes == {"name": {"old": "Billing service", "new": None}}
    # Revoking twice records nothing new.
    acme_manager.post(url(people.acme, key), {}, htmx=True)
    revocations = select(AuditEntry).where(AuditEntry.action == "apikey.revoke")
    assert len(db.session.scalars(revocations).all()) == 1


def test_revoke_without_htmx_goes_back_to_the_list(as_acme, people):
    create_key(as_acme, people.acme)
    key = db.session.scalar(select(ApiKey))
    response = as_acme.post(url(people.acme, key), {})
    assert response.status_code == 302 and response.headers["Location"].endswith(url(people.acme))


def test_other_companies_keys_are_not_found(as_globex, people):
    key, _ = api_keys.create(people.acme, "Acme's", people.acme_admin)
    db.session.commit()
    assert as_globex.get(url(people.acme)).status_code == 404
    assert as_globex.post(url(people.acme), {"name": "Mine"}, htmx=True).status_code == 404
    assert as_globex.post(url(people.acme, key), {}, htmx=True).status_code == 404
    # Through its own company's URL, another company's key id is unknown too.
    assert as_globex.post(url(people.globex, key), {}, htmx=True).status_code == 404
    assert "Acme's" not in as_globex.get(url(people.globex)).text
    db.session.expire_all()
    assert key.revoked_at is None


def test_login_is_required(browser, people):
    response = browser.get(url(people.acme))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.browser
def test_create_and_revoke_in_the_browser(page, people):
    from playwright.sync_api import expect

    log_in(page, people.acme_admin.email)
    page.goto(url(people.acme))
    page.evaluate("window.__noReload = true")
    page.get_by_label("Key name").fill("Billing service")
    page.get_by_role("button", name="Create key").click()
    token = page.locator("#new-api-key")
    expect(token).to_have_text(re.compile(r"^pk_"))
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "api_keys_created.png", full_page=True)
    expect(page.locator("#history")).to_contain_text("API key created")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#api-keys")).to_contain_text("revoked")
    expect(page.locator("#new-api-key")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True
