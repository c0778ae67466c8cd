"""The Test connection button's quota and what a refused or a wrong-password test costs."""

import html
import re

import pytest
from sqlalchemy import select
from support.connection_tests import finished_panel
from support.factories import allow_test_server
from support.forms import VALID
from support.smtp_servers import HOST, server_context, smtp_server

from portal.extensions import db
from portal.models import AuditEntry

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


def test_the_quota_reads_in_the_users_language(as_superuser, people, allowed, web):
    web.config["MAIL_TEST_RATE_LIMIT"] = "1 per 10 minutes"
    people.superuser.language = "pt_BR"
    db.session.commit()
    form = global_form(allowed.port)
    assert finished_panel(as_superuser, GLOBAL_TEST, form).status_code == 200
    response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 429
    assert (
        "Testes de conexão em excesso (1 a cada 10 minutos). Tente novamente mais tarde."
        in seen(response.text)
    )


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


def connection_tests_section(page: str) -> str:
    found = re.search(r'<section class="connection-tests".*?</section>', page, re.S)
    assert found, page
    return seen(found.group(0))


def test_the_history_of_connection_tests_reads_in_the_users_language(as_superuser, people):
    # Rows as every release stored them: the English sentence with its values filled in.
    results = [
        "failed at Authentication: The server refused the user name or password.",
        "failed at Connect: Connection refused: nothing accepts connections on "
        "smtp.acme.example.com port 2525.",
        "cancelled at Server greeting",
        "succeeded",
        "Delivered somewhere only this row knows",
    ]
    for result in results:
        changes = {"server": "smtp.acme.example.com:2525", "result": result}
        db.session.add(AuditEntry(action="mail_settings.test", changes=changes, company_id=None))
    people.superuser.language = "pt_BR"
    db.session.commit()

    shown = connection_tests_section(as_superuser.get("/mail?type=tests").text)

    assert shown.startswith("Testes de conexão")
    assert "falha em Autenticação: O servidor recusou o nome de usuário ou a senha." in shown
    assert (
        "falha em Conectar: Conexão recusada: nada aceita conexões em smtp.acme.example.com "
        "na porta 2525." in shown
    )
    assert "cancelado em Saudação do servidor" in shown
    assert ": sucesso" in shown
    assert "Delivered somewhere only this row knows" in shown  # not recognized: as stored
    assert "smtp.acme.example.com:2525" in shown
    db.session.expire_all()
    stored = db.session.scalars(select(AuditEntry.changes)).all()
    assert [row["result"] for row in stored] == results  # the rows themselves stay English


def test_the_same_history_reads_in_english_by_default(as_superuser):
    changes = {"result": "failed at Authentication: The server refused the user name or password."}
    db.session.add(AuditEntry(action="mail_settings.test", changes=changes, company_id=None))
    db.session.commit()

    shown = connection_tests_section(as_superuser.get("/mail?type=tests").text)

    assert "failed at Authentication: The server refused the user name or password." in shown
