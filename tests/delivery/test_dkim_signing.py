"""DKIM on the way out: mail arrives signed by the active key, verifiable with the shown record."""

import email
import re
from email import policy

import dkim
import pytest
from support.connection_tests import finished_panel
from support.dkim import PublishedDns, dkim_base, publish_and_activate, shown_records
from support.factories import configure, queue, row, run_queued_jobs
from support.forms import VALID

from portal import delivery
from portal.extensions import db
from portal.outbox import handoff, queries

SELECTOR_TAG = re.compile(rb"\bs=([a-z0-9-]+);")


@pytest.fixture
def dns(web) -> PublishedDns:
    return PublishedDns().serve(web)


def arrived(server) -> list[bytes]:
    return [m.data for m in server.handler.messages]


def selector_of(data: bytes) -> str | None:
    message = email.message_from_bytes(data, policy=policy.compat32)
    signature = message["DKIM-Signature"]
    if signature is None:
        return None
    return SELECTOR_TAG.search(re.sub(rb"\s+", b"", signature.encode())).group(1).decode()


def send_one(company, server) -> bytes:
    (message,) = queue(company)
    delivery.deliver(message.id)
    assert row(message).status == "sent"
    return arrived(server)[-1]


def test_mail_arrives_signed_and_verifies_with_the_record_the_page_shows(
    as_superuser, people, server, dns
):
    configure(port=server.port)
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    data = send_one(people.acme, server)
    assert data.startswith(b"DKIM-Signature:")
    assert selector_of(data) == "portal202612"
    assert dkim.verify(data, dnsfunc=dns.dnsfunc)
    signature = email.message_from_bytes(data)["DKIM-Signature"]
    compact = re.sub(r"\s+", "", signature)
    assert "c=relaxed/relaxed" in compact and "d=example.com" in compact
    signed = compact.split("h=")[1].split(";")[0].lower().split(":")
    for header in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert header in signed


def test_a_changed_header_breaks_the_signature(as_superuser, people, server, dns):
    configure(port=server.port)
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    data = send_one(people.acme, server)
    assert dkim.verify(data, dnsfunc=dns.dnsfunc)
    tampered = data.replace(b"Subject: Hello 0", b"Subject: Hello 1")
    assert tampered != data
    assert not dkim.verify(tampered, dnsfunc=dns.dnsfunc)


def test_a_key_shown_but_not_active_signs_nothing(as_superuser, people, server):
    configure(port=server.port)
    made = as_superuser.post(
        dkim_base(), {"dkim_domain": "example.com", "dkim_selector": "s1"}, htmx=True
    )
    assert made.status_code == 200 and shown_records(made.text)
    data = send_one(people.acme, server)
    assert b"DKIM-Signature" not in data


def test_mail_of_another_domain_is_not_signed(as_superuser, people, server, dns):
    configure(port=server.port, sender_address="noreply@other.example.net")
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    data = send_one(people.acme, server)
    assert b"DKIM-Signature" not in data


def test_the_outbox_keeps_the_mail_unsigned(as_superuser, people, server, dns):
    configure(port=server.port)
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    assert b"DKIM-Signature" in arrived(server)[0]
    assert b"DKIM-Signature" not in row(message).raw


def test_after_rotation_new_mail_carries_the_new_selector_and_verifies(
    as_superuser, people, server, dns
):
    configure(port=server.port)
    first, *_ = publish_and_activate(as_superuser, dns, "example.com", "portal202611")
    before = send_one(people.acme, server)
    second, *_ = publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    after = send_one(people.acme, server)
    assert selector_of(before) == "portal202611" and selector_of(after) == "portal202612"
    assert dkim.verify(before, dnsfunc=dns.dnsfunc) and dkim.verify(after, dnsfunc=dns.dnsfunc)
    page = as_superuser.get("/settings/mail").text
    assert f'id="dkim-key-{first}" class="dkim-key state-retired' in page
    assert f'id="dkim-key-{second}" class="dkim-key state-active' in page


def test_a_resend_after_rotation_is_signed_with_the_current_key(as_superuser, people, server, dns):
    configure(port=server.port)
    publish_and_activate(as_superuser, dns, "example.com", "portal202611")
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    outcome = queries.resend([message.id], people.acme.id)
    db.session.commit()
    handoff.wake(lane for _, lane in outcome.handoffs)
    run_queued_jobs()
    first, resent = arrived(server)
    assert selector_of(first) == "portal202611" and selector_of(resent) == "portal202612"
    assert dkim.verify(resent, dnsfunc=dns.dnsfunc)


def test_a_company_with_its_own_sender_signs_with_its_own_key_only(
    as_superuser, as_acme, people, server, dns
):
    configure(port=server.port)
    configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
    db.session.commit()
    publish_and_activate(as_acme, dns, "acme.example.com", "acme1", company=people.acme)
    acme_mail = send_one(people.acme, server)
    globex_mail = send_one(people.globex, server)
    assert selector_of(acme_mail) == "acme1" and dkim.verify(acme_mail, dnsfunc=dns.dnsfunc)
    assert b"DKIM-Signature" not in globex_mail


def test_a_global_key_never_signs_a_company_own_sender_of_its_domain(
    as_superuser, people, server, dns
):
    """A company that types the global domain as its sender gets no signature in its name."""
    configure(port=server.port)
    configure(people.acme, port=server.port, sender_address="fake@example.com")
    db.session.commit()
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    assert b"DKIM-Signature" not in send_one(people.acme, server)
    assert selector_of(send_one(people.globex, server)) == "portal202612"


def connection_test(client, port: int) -> str:
    data = {
        **VALID,
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "timeout_seconds": "10",
        "test_recipient": "check@example.org",
    }
    for name in ("auth_enabled", "username", "password"):
        data.pop(name)
    response = finished_panel(client, "/settings/mail/test", data)
    assert response.status_code == 200, response.text
    return response.text


def test_the_connection_test_says_whether_its_mail_was_signed(as_superuser, server, dns):
    configure(port=server.port)
    unsigned = connection_test(as_superuser, server.port)
    assert "Not signed: no active DKIM key for example.com." in unsigned
    assert b"DKIM-Signature" not in arrived(server)[0]
    publish_and_activate(as_superuser, dns, "example.com", "portal202612")
    signed = connection_test(as_superuser, server.port)
    assert "Signed with DKIM selector portal202612 for domain example.com." in signed
    assert dkim.verify(arrived(server)[1], dnsfunc=dns.dnsfunc)
