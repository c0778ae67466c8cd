"""The role matrix: every route for anonymous users, both company admins and the superuser."""

import pytest
from support.web import ACME, ANON, GLOBEX, ROUTES, SUPER, Browser


@pytest.fixture
def as_role(browser, people):
    def login(role):
        email = {
            ACME: people.acme_admin.email,
            GLOBEX: people.globex_admin.email,
            SUPER: people.superuser.email,
        }.get(role)
        if email:
            assert browser.login(email).status_code == 302
        return browser

    return login


@pytest.mark.parametrize("role", [ANON, ACME, GLOBEX, SUPER])
@pytest.mark.parametrize(
    ("method", "path", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_role_matrix(as_role, people, role, method, path, expected):
    client = as_role(role)
    url = path.format(acme=people.acme.id, acme_admin=people.acme_admin.id)
    response = client.get(url) if method == "GET" else client.post(url, {})
    assert response.status_code == expected[role]
    if expected[role] == 302 and role == ANON:
        assert "/login" in response.headers["Location"]


def test_company_admin_sees_only_their_company_in_the_navigation(as_acme, people):
    page = as_acme.get(f"/companies/{people.acme.id}/email").text
    assert "Acme Ltd" in page and "Globex" not in page and "Settings → Mail" not in page


def test_removed_admin_loses_access_at_once(as_superuser, web, people):
    other = Browser(web.test_client())
    other.login(people.acme_admin.email)
    assert other.get(f"/companies/{people.acme.id}/email").status_code == 200
    as_superuser.post(f"/companies/{people.acme.id}/admins/{people.acme_admin.id}/remove", {})
    # Removal ends their sessions: the next click opens the login page.
    after = other.get(f"/companies/{people.acme.id}/email")
    assert after.status_code == 302 and "/login" in after.headers["Location"]


@pytest.mark.parametrize(
    "path", ["/settings/mail", "/companies", "/companies/{acme}/email", "/logout"]
)
def test_state_changes_without_csrf_token_are_refused(as_superuser, people, path):
    client = as_superuser.client
    response = client.post(path.format(acme=people.acme.id), data={"host": "evil.example.com"})
    assert response.status_code == 400
    assert "CSRF" in response.text


def test_csrf_token_of_another_session_is_refused(as_superuser, web, people):
    stranger = Browser(web.test_client())
    token = stranger.csrf()
    response = as_superuser.client.post(
        "/settings/mail", data={"host": "evil.example.com"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 400


def test_settings_pages_are_not_cached(as_superuser):
    response = as_superuser.get("/settings/mail")
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers.get("Vary", "")
