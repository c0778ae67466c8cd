"""Trusted CA certificates per configuration: checked, shown, removed, and used for TLS."""

import html
import io
import re

import pytest
from sqlalchemy import select
from support.connection_tests import finished_panel
from support.factories import allow_test_server
from support.forms import GLOBAL_URL, VALID, at_field, company_data, company_url, saved_global
from support.smtp_servers import HOST, server_context, smtp_server

from portal import delivery, outbox
from portal.extensions import db
from portal.models import AuditEntry
from portal.wire.trust import MSG_NOT_PEM

TAG = re.compile(r"<[^>]+>")
UNTRUSTED = "The server's certificate is not trusted"
RECIPIENT = "check@example.org"


def seen(page: str) -> str:
    spaced = " ".join(html.unescape(TAG.sub(" ", page)).split())
    return re.sub(r" ([:,.)])", r"\1", spaced)


def global_form(port: int, **overrides) -> dict:
    data = {**VALID, "host": HOST, "port": str(port), "security": "starttls", **overrides}
    data.update(egress_allowlist="127.0.0.1/32", egress_extra_ports=str(port))  # kept on save
    for name in ("auth_enabled", "username", "password"):
        data.pop(name)
    return data


@pytest.fixture
def private_ca(certs, app, web):
    """A STARTTLS server whose certificate a private CA signed, and that CA's PEM.

    The portal trusts only the system's CAs (no MAIL_CA_FILE)."""
    for served in (app, web):
        served.config["MAIL_CA_FILE"] = None
    with smtp_server(starttls=server_context(certs.good), require_starttls=True) as running:
        allow_test_server(running.port)
        yield running, certs.ca.read_text()


def test_a_private_ca_fails_until_its_certificate_is_saved(as_superuser, private_ca):
    server, ca_pem = private_ca
    form = {**global_form(server.port), "test_recipient": RECIPIENT}
    before = finished_panel(as_superuser, "/settings/mail/test", form)
    assert UNTRUSTED in seen(before.text)
    assert server.handler.messages == []

    saved = as_superuser.post(GLOBAL_URL, {**form, "ca_bundle_pem": ca_pem}, htmx=True)
    assert saved.status_code == 200, seen(saved.text)
    assert "Portal Test CA, valid until" in seen(at_field(saved.text, "ca_bundle_pem"))
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", saved.text, re.S).group(1)
    assert textarea.strip() == ""  # the stored bundle is listed, not put back into the field
    assert saved_global().ca_bundle.strip() == ca_pem.strip()
    (entry,) = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "mail_settings.update")
    )
    assert entry.changes["ca_bundle"]["old"] is None
    assert entry.changes["ca_bundle"]["new"].startswith("Portal Test CA (until ")

    after = finished_panel(as_superuser, "/settings/mail/test", form)
    assert "Connection works." in seen(after.text)
    assert [m.rcpt_tos for m in server.handler.messages] == [[RECIPIENT]]


def test_a_pasted_certificate_counts_for_a_test_before_it_is_saved(as_superuser, private_ca):
    server, ca_pem = private_ca
    form = {
        **global_form(server.port),
        "test_recipient": RECIPIENT,
        "ca_bundle_pem": ca_pem,
    }
    response = finished_panel(as_superuser, "/settings/mail/test", form)
    assert "Connection works." in seen(response.text)
    assert saved_global() is None or saved_global().ca_bundle is None


def test_a_company_uploads_its_ca_and_real_mail_is_delivered(as_acme, people, private_ca):
    server, ca_pem = private_ca
    data = company_data(host=HOST, port=str(server.port), security="starttls")
    upload = (io.BytesIO(ca_pem.encode()), "internal-ca.pem")
    response = as_acme.post(company_url(people.acme), {**data, "ca_bundle_file": upload}, htmx=True)
    assert response.status_code == 200, seen(response.text)
    assert "Portal Test CA" in seen(at_field(response.text, "ca_bundle_pem"))

    outbox.send(people.acme, to=[RECIPIENT], subject="Through the internal CA", text="Hi")
    assert delivery.drain() == 1
    (arrived,) = server.handler.messages
    assert arrived.rcpt_tos == [RECIPIENT]
    assert b"Through the internal CA" in arrived.data


def test_without_the_company_ca_real_mail_is_not_delivered(as_acme, people, private_ca):
    server, ca_pem = private_ca
    data = company_data(host=HOST, port=str(server.port), security="starttls")
    assert as_acme.post(company_url(people.acme), data, htmx=True).status_code == 200
    outbox.send(people.acme, to=[RECIPIENT], subject="No trust", text="Hi")
    delivery.drain()
    assert server.handler.messages == []


@pytest.mark.parametrize(
    "pem",
    [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_an_invalid_bundle_is_refused_at_the_field_and_nothing_saved(as_superuser, pem):
    as_superuser.post(GLOBAL_URL, VALID, htmx=True)
    data = {**VALID, "host": "changed.example.com", "ca_bundle_pem": pem}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert MSG_NOT_PEM in seen(at_field(response.text, "ca_bundle_pem"))
    config = saved_global()
    assert (config.host, config.ca_bundle) == ("smtp.example.com", None)


def test_an_uploaded_file_that_is_not_text_is_refused(as_acme, people):
    upload = (io.BytesIO(b"\xff\xd8\xff\xe0 a picture"), "photo.jpg")
    response = as_acme.post(
        company_url(people.acme), {**company_data(), "ca_bundle_file": upload}, htmx=True
    )
    assert response.status_code == 422
    assert MSG_NOT_PEM in seen(at_field(response.text, "ca_bundle_pem"))
    db.session.expire_all()
    assert people.acme.mail_config is None


def test_remove_drops_the_stored_certificates(as_superuser, certs):
    pem = certs.ca.read_text()
    as_superuser.post(GLOBAL_URL, {**VALID, "ca_bundle_pem": pem}, htmx=True)
    kept = as_superuser.post(GLOBAL_URL, VALID, htmx=True)  # an empty field keeps them
    assert "Portal Test CA" in seen(at_field(kept.text, "ca_bundle_pem"))
    assert saved_global().ca_bundle

    removed = as_superuser.post(GLOBAL_URL, {**VALID, "remove_ca_bundle": "y"}, htmx=True)
    assert removed.status_code == 200
    assert "Portal Test CA" not in seen(at_field(removed.text, "ca_bundle_pem"))
    assert saved_global().ca_bundle is None
