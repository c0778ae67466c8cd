"""XOAUTH2 access tokens: caching, rotation, one refresh at a time, and refresh failures."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update
from support.factories import queue, row
from support.forms import GLOBAL_URL
from support.oauth import consent, expire_cached_token, grant, oauth_form, stored_refresh_token
from support.oauth_server import oauth_provider
from support.smtp_servers import RecordingHandler, server_context, smtp_server

from portal import delivery
from portal.exceptions import OAuthTokenError
from portal.extensions import db
from portal.keys import tokens
from portal.models import OAuthGrant, OutboxMessage, utcnow
from portal.settings.resolution import global_config


def test_cached_token_serves_many_mails_without_refresh(connected, provider, smtp, people):
    for message in queue(people.acme, 3):
        delivery.deliver(message.id)
    assert len(smtp.handler.messages) == 3
    assert provider.refresh_count == 0
    assert len(set(smtp.handler.xoauth2_tokens)) == 1


def test_expiring_token_is_refreshed_and_rotation_saved_at_once(connected, provider, smtp, people):
    first = stored_refresh_token()
    expire_cached_token()
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    assert row(message).status == "sent"
    assert provider.refresh_count == 1
    assert stored_refresh_token() == provider.issued_refresh_tokens[-1] != first
    assert provider.valid_refresh_tokens() == {stored_refresh_token()}


def _race(app, config_id: int, results: list) -> None:
    with app.app_context():
        try:
            results.append(tokens.access_token(config_id))
        except Exception as exc:  # noqa: BLE001 - the test reports what happened
            results.append(exc)


def test_concurrent_refresh_keeps_the_newest_refresh_token(connected, provider, app):
    expire_cached_token()
    provider.refresh_delay = 0.5  # strict rotation: a second refresh with the old token fails
    config_id = global_config().id
    results: list = []
    threads = [threading.Thread(target=_race, args=(app, config_id, results)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 3 and all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1 and provider.is_valid_access_token(results[0])
    assert provider.refresh_count == 1
    assert stored_refresh_token() == provider.issued_refresh_tokens[-1]
    assert stored_refresh_token() in provider.valid_refresh_tokens()
    assert not grant().reauth_needed and grant().refresh_lease_until is None


def test_a_dead_workers_refresh_lease_is_taken_over(connected, provider):
    expire_cached_token()
    gone = utcnow() - timedelta(seconds=1)
    db.session.execute(update(OAuthGrant).values(refresh_lease_until=gone))
    db.session.commit()
    token = tokens.access_token(global_config().id)
    assert provider.is_valid_access_token(token) and provider.refresh_count == 1


def test_rotation_off_keeps_the_refresh_token(certs, app, web, as_superuser):
    """Google answers a refresh without a new refresh token: the saved one stays."""
    for served in (app, web):
        served.config["MAIL_CA_FILE"] = str(certs.ca)
    with oauth_provider(certs, rotate=False) as google_like:
        google_like.ca = str(certs.ca)
        handler = RecordingHandler(xoauth2=google_like.is_valid_access_token)
        with smtp_server(handler, starttls=server_context(certs.good), auth=True) as running:
            as_superuser.post(GLOBAL_URL, oauth_form(google_like, running.port), htmx=True)
            consent(as_superuser, google_like)
            first = stored_refresh_token()
            expire_cached_token()
            token = tokens.access_token(global_config().id)
            assert google_like.is_valid_access_token(token)
            assert stored_refresh_token() == first and google_like.refresh_count == 1


def test_token_endpoint_with_an_untrusted_certificate_is_refused(connected, app, provider):
    app.config["MAIL_CA_FILE"] = None  # the test CA is no longer trusted
    expire_cached_token()
    before = stored_refresh_token()
    with pytest.raises(OAuthTokenError, match="TLS certificate was not accepted") as refused:
        tokens.access_token(global_config().id)
    assert not refused.value.admin_action and provider.refresh_count == 0
    assert stored_refresh_token() == before and not grant().reauth_needed


@pytest.mark.parametrize(
    ("error", "waits"), [("temporarily_unavailable", False), ("invalid_client", True)]
)
def test_other_refresh_errors_defer_without_asking_for_reauthorization(
    connected, provider, smtp, people, error, waits
):
    provider.fail_refresh_with = error
    expire_cached_token()
    (message,) = queue(people.acme)
    old = utcnow() - timedelta(days=3)  # past the give-up time
    db.session.execute(update(OutboxMessage).values(created_at=old))
    db.session.commit()
    delivery.deliver(message.id)
    stored = row(message)
    assert "Token refresh failed" in stored.last_reply
    assert (error if waits else "HTTP 503") in stored.last_reply
    # Only an admin can fix a refused client: that mail waits; a provider outage runs its course.
    assert stored.status == ("deferred" if waits else "failed")
    assert not grant().reauth_needed and smtp.handler.connections == []
