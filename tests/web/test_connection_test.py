"""The Test connection button's quota and what a refused or a wrong-password test costs."""

import html
import re

import pytest
from support.connection_tests import finished_panel
from support.factories import allow_test_server
from support.forms import VALID
from support.smtp_servers import HOST, server_context, smtp_server

GLOBAL_TEST = "/settings/mail/test"
RECIPIENT = "check@example.org"
TAG = re.compile(r"<[^>]+>")


def global_form(port: int, /, **overrides) -> dict:
    data = {
        **VALID,
        "host": HOST,
        "port": str(port),
        "security": "none",
        "timeout_seconds": "10",
        "test_recipient": RECIPIENT,
        **overrides,
    }
    for name in ("auth_enabled", "username", "password"):
        if name not in overrides:
            data.pop(name)
    return data


def seen(page: str) -> str:
    return " ".join(html.unescape(TAG.sub(" ", page)).split())


@pytest.fixture
def allowed(app, server):
    allow_test_server(server.port)
    return server


def test_refused_tests_leave_the_quota_alone(as_superuser, allowed):
    refused = global_form(allowed.port, test_recipient="not an address")
    for _ in range(11):
        assert finished_panel(as_superuser, GLOBAL_TEST, refused).status_code == 422
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(allowed.port))

    assert response.status_code == 200 and "Connection works." in response.text
    assert len(allowed.handler.messages) == 1


def test_the_quota_reads_as_english(as_superuser, allowed, web):
    web.config["MAIL_TEST_RATE_LIMIT"] = "1 per 10 minutes"
    form = global_form(allowed.port)
    assert finished_panel(as_superuser, GLOBAL_TEST, form).status_code == 200
    response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 429
    assert "Too many connection tests (1 per 10 minutes)." in seen(response.text)


def test_a_wrong_password_costs_one_failed_login(as_superuser, app, certs, web):
    web.config["MAIL_CA_FILE"] = str(certs.ca)
    context = server_context(certs.good)
    with smtp_server(starttls=context, require_starttls=True, auth=True) as running:
        allow_test_server(running.port)
        login = {"auth_enabled": "y", "username": "user", "password": "wrong"}
        form = global_form(running.port, security="starttls", **login)
        response = finished_panel(as_superuser, GLOBAL_TEST, form)

        assert "535" in seen(response.text)
        (connection,) = running.handler.connections
        assert connection.auths == [("user", True, False)]
