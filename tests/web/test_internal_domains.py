"""Internal mail domains: refused with the reason until listed, then accepted everywhere."""

import html
import re

import pytest
from sqlalchemy import select
from support.api import MESSAGES, auth, mail_body, new_key
from support.connection_tests import finished_panel
from support.factories import allow_test_server, configure, mail_config
from support.forms import GLOBAL_URL, VALID, at_field, company_data, company_url, saved_global
from support.smtp_servers import HOST

from portal import delivery
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage

INTERNAL = "ops@empresa.local"
SPECIAL_USE = "The part after the @-sign is a special-use or reserved name"
TAG = re.compile(r"<[^>]+>")


def seen(page: str) -> str:
    return " ".join(html.unescape(TAG.sub(" ", page)).split())


def list_internal(domains: str = "empresa.local") -> None:
    mail_config(internal_domains=domains)


def test_an_internal_sender_is_refused_with_the_reason_until_its_domain_is_listed(as_superuser):
    response = as_superuser.post(GLOBAL_URL, {**VALID, "sender_address": INTERNAL}, htmx=True)
    assert response.status_code == 422
    assert SPECIAL_USE in seen(at_field(response.text, "sender_address"))
    assert saved_global() is None or saved_global().sender_address != INTERNAL

    data = {**VALID, "sender_address": INTERNAL, "internal_domains": "Empresa.Local\ntest"}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 200, seen(response.text)
    config = saved_global()
    assert (config.sender_address, config.internal_domains) == (INTERNAL, "empresa.local\ntest")
    (entry,) = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "mail_settings.update")
    )
    assert entry.changes["internal_domains"] == {"old": None, "new": "empresa.local\ntest"}
    assert "empresa.local" in at_field(as_superuser.get(GLOBAL_URL).text, "internal_domains")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("empresa_local", "Not a domain name: 'empresa_local'"),
        ("empresa.local\n10.0.0.1", "Enter a name, not an IP address."),
        ("-bad-.local", "Not a domain name: '-bad-.local'"),
    ],
)
def test_an_internal_domain_must_be_a_domain_name(as_superuser, typed, message):
    as_superuser.post(GLOBAL_URL, VALID, htmx=True)
    response = as_superuser.post(GLOBAL_URL, {**VALID, "internal_domains": typed}, htmx=True)
    assert response.status_code == 422
    assert message in seen(at_field(response.text, "internal_domains"))
    assert saved_global().internal_domains is None


def test_other_special_use_domains_stay_refused_with_their_reason(as_acme, people):
    list_internal()
    company = company_url(people.acme)
    accepted = company_data(reply_to="help@mail.empresa.local")  # a subdomain counts
    assert as_acme.post(company, accepted, htmx=True).status_code == 200
    response = as_acme.post(company, company_data(reply_to="help@empresa.invalid"), htmx=True)
    assert response.status_code == 422
    assert SPECIAL_USE in seen(at_field(response.text, "reply_to"))
    db.session.expire_all()
    assert people.acme.mail_config.reply_to == "help@mail.empresa.local"


def test_only_the_superuser_lists_internal_domains(as_acme, people):
    data = company_data(internal_domains="empresa.local", reply_to=INTERNAL)
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 422  # the field is not on the company's form
    assert 'name="internal_domains"' not in response.text
    assert saved_global() is None or saved_global().internal_domains is None


def test_the_api_refuses_an_internal_recipient_then_accepts_it(web, people):
    client = web.test_client()
    configure()
    token = new_key(people.acme)
    body = mail_body(to=[INTERNAL])
    refused = client.post(MESSAGES, json=body, headers=auth(token))
    assert refused.status_code == 422
    assert (
        refused.json["errors"]["to"]
        == f"Not a valid email address: '{INTERNAL}'. {SPECIAL_USE} that cannot be used with email."
    )

    list_internal()
    accepted = client.post(MESSAGES, json=body, headers=auth(token))
    assert accepted.status_code == 202, accepted.json
    stored = db.session.get(OutboxMessage, accepted.json["id"])
    assert stored.recipients == [INTERNAL]


def test_the_cli_refuses_an_internal_recipient_then_delivers_to_it(app, server):
    configure(port=server.port)
    command = ["send-mail", "--to", INTERNAL]
    refused = app.test_cli_runner().invoke(args=command)
    assert refused.exit_code != 0 and SPECIAL_USE in refused.output

    list_internal()
    queued = app.test_cli_runner().invoke(args=command)
    assert queued.exit_code == 0, queued.output
    assert delivery.drain() == 1
    (arrived,) = server.handler.messages
    assert arrived.rcpt_tos == [INTERNAL]


def test_a_connection_test_to_an_internal_address_is_delivered(as_superuser, server):
    allow_test_server(server.port)
    form = {
        **VALID,
        "host": HOST,
        "port": str(server.port),
        "security": "none",
        "test_recipient": INTERNAL,
    }
    for name in ("auth_enabled", "username", "password"):
        form.pop(name)
    refused = finished_panel(as_superuser, "/settings/mail/test", form)
    assert refused.status_code == 422
    assert f"Enter the address the test mail goes to. {SPECIAL_USE}" in seen(refused.text)

    # Listed in the same form, not yet saved: the test uses the form's values.
    response = finished_panel(
        as_superuser, "/settings/mail/test", {**form, "internal_domains": "empresa.local"}
    )
    assert "Connection works." in seen(response.text)
    (arrived,) = server.handler.messages
    assert arrived.rcpt_tos == [INTERNAL]
