"""A refused CSRF token says the page expired; /csrf-token gives the page a fresh one."""

import time

import pytest
from sqlalchemy import func, select
from support.factories import allow_test_server
from support.forms import company_data
from support.web import Browser

from portal.app import create_app
from portal.delivery.connection_jobs import MSG_NO_QUEUE
from portal.extensions import db
from portal.models import Company

HTMX = {"HX-Request": "true"}


def companies_named(name: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Company).where(Company.name == name))


@pytest.fixture
def short_tokens(web):
    """Tokens that expire after a second, as after an hour in production."""
    web.config["WTF_CSRF_TIME_LIMIT"] = 1


def test_fresh_token_is_not_cached_and_says_the_session_is_logged_in(as_superuser):
    answer = as_superuser.client.get("/csrf-token")
    assert answer.status_code == 200 and answer.json["signed_in"] is True
    assert answer.json["csrf_token"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_fresh_token_tells_a_page_whose_login_ended(browser):
    answer = browser.client.get("/csrf-token")
    assert answer.status_code == 200 and answer.json["signed_in"] is False


def test_expired_token_of_an_htmx_save_is_named_and_nothing_is_saved(as_superuser, short_tokens):
    token = as_superuser.csrf()
    time.sleep(2.1)  # whole seconds: older than the limit, not equal
    refused = as_superuser.client.post(
        "/companies", data={"name": "Initech"}, headers={**HTMX, "X-CSRFToken": token}
    )
    assert refused.status_code == 400
    assert refused.headers["X-Page-Expired"] == "1"
    assert refused.json == {"error": "page-expired", "reason": "The CSRF token has expired."}
    assert companies_named("Initech") == 0

    fresh = as_superuser.client.get("/csrf-token").json["csrf_token"]
    saved = as_superuser.client.post(
        "/companies", data={"name": "Initech"}, headers={**HTMX, "X-CSRFToken": fresh}
    )
    assert saved.status_code == 200 and "Company “Initech” created." in saved.text
    assert companies_named("Initech") == 1


def test_expired_token_of_a_plain_form_shows_the_expired_page(as_superuser, short_tokens):
    token = as_superuser.csrf()
    time.sleep(2.1)  # whole seconds: older than the limit, not equal
    refused = as_superuser.client.post("/companies", data={"name": "Initech", "csrf_token": token})
    assert refused.status_code == 400
    assert "This page expired" in refused.text and "reload the page" in refused.text
    assert "X-Page-Expired" not in refused.headers
    assert companies_named("Initech") == 0


def test_connection_test_refused_with_redis_down_is_a_panel_to_swap(app_config, people, server):
    # Nothing listens on port 1: Redis is down when the test would be queued.
    served = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        admin = Browser(served.test_client())
        admin.login(people.acme_admin.email)
        allow_test_server(server.port)
        form = company_data(host="127.0.0.1", port=str(server.port), security="none")
        form["test_recipient"] = "check@example.org"
        refused = admin.post(f"/companies/{people.acme.id}/email/test", form, htmx=True)
        assert refused.status_code == 503
        assert refused.headers["X-Swap-Error"] == "1"
        assert MSG_NO_QUEUE in refused.text and 'id="test-result"' in refused.text
        assert server.handler.connections == []
    finally:
        with served.app_context():
            db.engine.dispose()
