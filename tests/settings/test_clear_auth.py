"""A password never crosses the network in clear: AUTH over Security "None" needs a listed relay."""

import pytest
from support.factories import mail_config
from support.forms import GLOBAL_URL, saved_global

from portal.delivery.smtp_config import smtp_config
from portal.settings.resolution import MSG_CLEAR_AUTH, resolve
from portal.wire.egress import EgressError

IN_CLEAR = {
    "host": "smtp.example.com",
    "port": "25",
    "security": "none",
    "auth_enabled": "y",
    "username": "mailer",
    "password": "a-password-to-keep-secret",
    "default_sender_enabled": "y",
    "sender_address": "noreply@example.com",
    "timeout_seconds": "30",
    "max_sessions": "2",
    "retention_days": "30",
}


def test_password_auth_without_tls_to_an_unlisted_server_is_refused_at_the_field(as_superuser):
    response = as_superuser.post(GLOBAL_URL, IN_CLEAR, htmx=True)
    assert response.status_code == 422
    assert "the password would cross the network in clear" in response.text
    assert saved_global() is None


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"security": "starttls", "port": "587"}, 200),
        ({"security": "ssl", "port": "465"}, 200),
        ({"auth_enabled": ""}, 200),
        ({"host": "relay.internal.example", "egress_allowlist": "relay.internal.example"}, 200),
        ({"host": "10.1.2.3", "egress_allowlist": "10.1.2.0/24"}, 200),
        ({"host": "10.1.2.3", "egress_allowlist": "10.9.0.0/16"}, 422),
    ],
)
def test_tls_no_auth_or_a_listed_relay_may_be_saved(as_superuser, changes, status):
    response = as_superuser.post(GLOBAL_URL, {**IN_CLEAR, **changes}, htmx=True)
    assert response.status_code == status
    assert (saved_global() is not None) == (status == 200)


def test_a_company_tab_uses_the_global_relays(as_superuser, people):
    url = f"/companies/{people.acme.id}/email"
    data = {**IN_CLEAR, "use_own": "y", "host": "10.1.2.3"}
    assert as_superuser.post(url, data, htmx=True).status_code == 422
    listed = {**IN_CLEAR, "security": "starttls", "egress_allowlist": "10.1.2.0/24"}
    assert as_superuser.post(GLOBAL_URL, listed, htmx=True).status_code == 200
    assert as_superuser.post(url, data, htmx=True).status_code == 200
    # Switched off, the company's settings send nothing: they may be kept as typed.
    unused = {**data, "use_own": "", "host": "smtp.example.com"}
    assert as_superuser.post(url, unused, htmx=True).status_code == 200


def test_test_connection_says_why_it_refuses_to_send_the_password(as_superuser):
    response = as_superuser.post(
        f"{GLOBAL_URL}/test", {**IN_CLEAR, "test_recipient": "root@example.com"}, htmx=True
    )
    assert response.status_code == 422
    assert "Correct these fields first: Security." in response.text
    assert "the password would cross the network in clear" in response.text
    assert "a-password-to-keep-secret" not in response.text


def test_settings_saved_before_the_rule_are_refused_before_any_connection(app):
    # Saved by an older version: the worker must not send this password in clear.
    mail_config(
        host="8.8.8.8",  # a global literal: resolving it needs no DNS, nothing connects
        port=25,
        security="none",
        auth_enabled=True,
        username="mailer",
    )
    with pytest.raises(EgressError) as refused:
        smtp_config(resolve(None))
    assert refused.value.message == MSG_CLEAR_AUTH
