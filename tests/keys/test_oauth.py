"""OAuth2 (XOAUTH2) end to end: a real authorization server and a real SMTP server on loopback."""

import email
import logging
from datetime import timedelta
from email import policy
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select, update
from support.connection_tests import finished_panel
from support.factories import queue, row
from support.forms import GLOBAL_URL, steps
from support.oauth import (
    GLOBAL_AUTHORIZE,
    consent,
    expire_cached_token,
    grant,
    oauth_form,
    stored_refresh_token,
)
from support.oauth_server import MAILBOX

from portal import delivery, redis_client
from portal.exceptions import ReauthorizationNeededError
from portal.extensions import db
from portal.keys import tokens
from portal.models import AuditEntry, MailConfig, OutboxMessage, utcnow
from portal.settings.resolution import global_config

GLOBAL_DISCONNECT = "/settings/mail/oauth/disconnect"


def test_authorize_callback_send(connected, provider, smtp, people):
    page = connected.get(GLOBAL_URL).text
    assert f"Connected as <strong>{MAILBOX}</strong>" in page
    (asked,) = provider.authorize_requests
    assert asked["code_challenge_method"] == "S256" and asked["state"]
    assert provider.token_requests[0]["code_verifier"] is True
    assert provider.token_requests[0]["auth"] == "post"
    assert stored_refresh_token() == provider.issued_refresh_tokens[-1]
    stored = grant()
    assert stored.connected_as == MAILBOX and not stored.reauth_needed
    assert provider.client_secret not in (global_config().oauth_client_secret_encrypted or "")

    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    assert row(message).status == "sent"
    (arrived,) = smtp.handler.messages
    headers = email.message_from_bytes(arrived.data, policy=policy.default)
    assert headers["Message-ID"] == message.message_id
    assert smtp.handler.connections[-1].auths == [(MAILBOX, True, True)]
    assert provider.is_valid_access_token(smtp.handler.xoauth2_tokens[-1], MAILBOX)


def test_token_refused_by_smtp_forces_one_refresh_and_one_retry(connected, provider, smtp, people):
    provider.expire_access_tokens()  # still cached as valid here; the server says no
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    assert row(message).status == "sent"
    assert provider.refresh_count == 1
    assert smtp.handler.connections[-1].auths == [(MAILBOX, True, False), (MAILBOX, True, True)]


def test_server_refusing_every_token_fails_auth_after_one_refresh(connected, provider, smtp):
    smtp.handler.xoauth2 = lambda **_: False
    (message,) = queue(None)
    delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "deferred" and "535" in stored.last_reply
    assert provider.refresh_count == 1  # one forced refresh, not a loop


def test_invalid_grant_defers_mail_until_authorized_again(connected, provider, smtp, people, app):
    provider.revoke_all()
    expire_cached_token()
    messages = queue(people.acme, 2)
    for message in messages:
        delivery.deliver(message.id)
    for message in messages:
        stored = row(message)
        assert stored.status == "deferred"
        assert stored.last_reply.startswith("Re-authorization needed")
    assert grant().reauth_needed and smtp.handler.connections == []

    page = connected.get(GLOBAL_URL).text
    assert "Re-authorization needed." in page and "2 mails wait" in page

    # Past the give-up time the mails still wait: only an admin can help them.
    old = utcnow() - timedelta(days=3)
    db.session.execute(
        update(OutboxMessage).values(created_at=old, next_attempt_at=utcnow(), status="queued")
    )
    db.session.commit()
    for message in messages:
        delivery.deliver(message.id)
        assert row(message).status == "deferred"

    back = consent(connected, provider)
    assert back.status_code == 303
    flashed = connected.get(GLOBAL_URL).text
    assert f"Connected as {MAILBOX}. 2 waiting mails are on their way." in flashed
    assert not grant().reauth_needed
    assert delivery.drain() == 2  # woken by the consent: due at once
    assert {row(m).status for m in messages} == {"sent"}
    assert len(smtp.handler.messages) == 2


def test_disconnect_forgets_and_revokes_at_the_provider(connected, provider, people):
    refresh = stored_refresh_token()
    response = connected.post(GLOBAL_DISCONNECT, {}, htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == GLOBAL_URL
    assert grant() is None
    assert refresh in provider.revoked
    page = connected.get(GLOBAL_URL).text
    assert "Not connected." in page and "The provider revoked the authorization." in page
    with pytest.raises(ReauthorizationNeededError):
        tokens.access_token(global_config().id)
    actions = db.session.scalars(select(AuditEntry.changes)).all()
    assert {"oauth": "disconnected"} in actions


def test_changing_host_or_mailbox_drops_the_authorization(connected, provider, smtp):
    form = oauth_form(provider, smtp.port, username="other@example.com")
    form.pop("oauth_client_secret")
    response = connected.post(GLOBAL_URL, form, htmx=True)
    assert response.status_code == 200, response.text
    assert grant() is None and "Not connected." in response.text


def test_callback_refuses_a_foreign_replayed_or_missing_state(connected, provider, browser, people):
    started = connected.post(GLOBAL_AUTHORIZE, {}, htmx=True)
    location = requests.post(
        started.headers["HX-Redirect"],
        data={"confirm": "yes"},
        verify=provider.ca,
        allow_redirects=False,
        timeout=5,
    ).headers["Location"]
    back = urlsplit(location)
    callback = f"{back.path}?{back.query}"
    other = type(connected)(browser.client.application.test_client())
    other.login(people.superuser.email)
    assert other.get(callback).status_code == 400  # another browser: no matching session state
    assert connected.get(callback).status_code == 303
    assert connected.get(callback).status_code == 400  # used once
    assert connected.get("/oauth/callback?code=x").status_code == 400


def test_denied_consent_changes_nothing(as_superuser, provider, smtp):
    as_superuser.post(GLOBAL_URL, oauth_form(provider, smtp.port), htmx=True)
    back = consent(as_superuser, provider, allow=False)
    assert back.status_code == 303
    assert "did not authorize the mailbox (access_denied)" in as_superuser.get(GLOBAL_URL).text
    assert grant() is None


def test_company_connects_its_own_mailbox(browser, people, provider, smtp):
    browser.login(people.acme_admin.email)
    url = f"/companies/{people.acme.id}/email"
    form = {**oauth_form(provider, smtp.port), "use_own": "y"}
    for name in ("default_sender_enabled", "retention_days"):
        form.pop(name)
    assert browser.post(url, form, htmx=True).status_code == 200
    consent(browser, provider, f"{url}/oauth/authorize")
    config = db.session.scalar(select(MailConfig).where(MailConfig.company_id == people.acme.id))
    assert grant().mail_config_id == config.id
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    assert row(message).status == "sent"
    other = f"/companies/{people.globex.id}/email/oauth/authorize"
    assert browser.post(other, {}, htmx=True).status_code == 404


def test_connection_test_with_oauth_refreshes_and_sends(connected, provider, smtp):
    form = {**oauth_form(provider, smtp.port), "test_recipient": "check@example.org"}
    form.pop("oauth_client_secret")  # saved; the test uses the saved authorization
    page = finished_panel(connected, "/settings/mail/test", form).text
    assert steps(page)[:3] == [("token", True), ("resolve", True), ("connect", True)]
    assert ("auth", True) in steps(page) and "Connection works." in page
    assert provider.refresh_count == 1  # a test always checks the refresh token
    (arrived,) = smtp.handler.messages
    assert arrived.rcpt_tos == ["check@example.org"]


def test_connection_test_tells_a_failed_refresh_from_a_refused_token(connected, provider, smtp):
    form = {**oauth_form(provider, smtp.port), "test_recipient": "check@example.org"}
    form.pop("oauth_client_secret")
    provider.revoke_all()
    page = finished_panel(connected, "/settings/mail/test", form).text
    assert steps(page) == [("token", False)]
    assert "Token refresh failed" in page and "Authorize the mailbox again" in page
    assert smtp.handler.connections == []

    back = consent(connected, provider)
    assert back.status_code == 303
    smtp.handler.xoauth2 = lambda **_: False
    page = finished_panel(connected, "/settings/mail/test", form).text
    assert ("token", True) in steps(page) and ("auth", False) in steps(page)
    assert "SMTP refused the token" in page
    assert provider.refresh_count == 2  # the test's fresh token, then one more after the 535


def test_no_token_or_secret_in_pages_logs_or_jobs(connected, provider, smtp, people, app, caplog):
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        expire_cached_token()
        seen.append(connected.get(GLOBAL_URL).text)
        refresh = {**oauth_form(provider, smtp.port), "_refresh": "auth_method"}
        seen.append(connected.post(GLOBAL_URL, refresh, htmx=True).text)
        form = {**oauth_form(provider, smtp.port), "test_recipient": "check@example.org"}
        seen.append(connected.post(GLOBAL_URL, form, htmx=True).text)
        seen.append(finished_panel(connected, "/settings/mail/test", form).text)
        (message,) = queue(people.acme)
        redis = redis_client.connection(app)
        seen += [repr(redis.hgetall(key)) for key in redis.keys("rq:job:*")]
        delivery.deliver(message.id)
        seen.append(connected.get(f"/mail/{message.id}").text)
        seen.append(connected.get("/mail").text)
        provider.revoke_all()
        expire_cached_token()
        delivery.deliver(queue(people.acme)[0].id)
        seen.append(connected.get(GLOBAL_URL).text)
    # The test's own authorization server logs the tokens it issues: it is allowed to know them.
    provider_side = ("authlib.oauth2.rfc6749.grants", "authlib.oauth2.rfc6749.authenticate_client")
    seen += [r.getMessage() for r in caplog.records if not r.name.startswith(provider_side)]
    secrets = {
        provider.client_secret,
        *provider.issued_refresh_tokens,
        *smtp.handler.xoauth2_tokens,
    }
    assert len(secrets) >= 4
    for text in seen:
        for secret in secrets:
            assert secret not in text


def test_company_inheriting_a_global_mailbox_sees_that_mail_waits(connected, provider, people, web):
    provider.revoke_all()
    expire_cached_token()
    delivery.deliver(queue(people.acme)[0].id)
    admin = type(connected)(web.test_client())
    admin.login(people.acme_admin.email)
    page = admin.get(f"/companies/{people.acme.id}/email").text
    assert "The global mailbox needs to be authorized again by the superuser" in page
