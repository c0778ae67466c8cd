"""The DKIM signing section: generate, publish, check, activate, remove; scoped and write-only."""

import logging
import re
import zlib

import pytest
from sqlalchemy import select, text
from support.dkim import PublishedDns, dkim_base, key_states, publish_and_activate, shown_records
from support.factories import configure, queue, run_queued_jobs
from support.web import Browser

from portal import crypto, redis_client
from portal.extensions import db
from portal.keys import dkim
from portal.models import AuditEntry, DkimKey, OutboxMessage
from portal.outbox import handoff

FIELD_ERROR = re.compile(r'<p class="field-error" role="alert">([^<]+)</p>')


@pytest.fixture
def dns(web) -> PublishedDns:
    return PublishedDns().serve(web)


def generate(client, domain="example.com", selector="s1", company=None):
    return client.post(
        dkim_base(company), {"dkim_domain": domain, "dkim_selector": selector}, htmx=True
    )


def keys() -> list[DkimKey]:
    db.session.expire_all()
    return list(db.session.scalars(select(DkimKey).order_by(DkimKey.id)))


@pytest.mark.parametrize("where", ["global", "company"])
def test_the_section_offers_the_sender_domain_and_a_monthly_selector(as_superuser, people, where):
    configure(sender_address="noreply@example.com")
    url = "/settings/mail" if where == "global" else f"/companies/{people.acme.id}/email"
    page = as_superuser.get(url).text
    assert '<section id="dkim-signing"' in page and "Generate key" in page
    assert 'name="dkim_domain" type="text" value="example.com"' in page
    assert f'value="{dkim.default_selector()}"' in page
    assert re.fullmatch(r"portal\d{6}", dkim.default_selector())
    assert "No DKIM keys yet" in page


def test_generate_shows_the_record_to_publish_with_copy_buttons(as_acme, people):
    made = generate(as_acme, "acme.example.com", "portal202612", company=people.acme)
    assert made.status_code == 200
    (key,) = keys()
    assert key.company_id == people.acme.id
    assert shown_records(made.text) == {
        key.id: (
            "portal202612._domainkey.acme.example.com",
            f"v=DKIM1; k=rsa; p={key.public_key}",
        )
    }
    assert f'data-copy="dkim-value-{key.id}"' in made.text
    assert "new: not yet found in DNS" in made.text
    assert 'id="history" class="history" hx-swap-oob="true"' in made.text
    assert "DKIM key generated" in made.text


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"dkim_domain": "", "dkim_selector": "s1"}, "dkim_domain", "Enter the domain"),
        ({"dkim_domain": "not a domain", "dkim_selector": "s1"}, "dkim_domain", "domain name"),
        (
            {"dkim_domain": "example.com", "dkim_selector": "no_underscores"},
            "dkim_selector",
            "hyphens",
        ),
        (
            {"dkim_domain": "example.com\r\nX: y", "dkim_selector": "s1"},
            "dkim_domain",
            "Line breaks",
        ),
    ],
)
def test_bad_input_is_refused_at_its_field_and_nothing_is_saved(
    as_superuser, people, data, field, message
):
    refused = as_superuser.post(dkim_base(), data, htmx=True)
    assert refused.status_code == 422
    block = refused.text.split(f'id="field-{field}"')[1].split("</div>")[0]
    assert message in block
    assert keys() == []


def test_a_selector_taken_for_the_domain_is_refused_at_the_selector(as_superuser):
    assert generate(as_superuser).status_code == 200
    again = generate(as_superuser)
    assert again.status_code == 422
    block = again.text.split('id="field-dkim_selector"')[1].split("</div>")[0]
    assert "has a key with the selector s1" in block
    assert len(keys()) == 1


def test_activate_waits_for_the_dns_check_unless_forced(as_superuser, dns):
    made = generate(as_superuser)
    (key_id,) = shown_records(made.text)
    assert re.search(
        rf'dkim/{key_id}/activate".*?<button type="submit" class="primary" disabled>',
        made.text,
        re.S,
    )
    refused = as_superuser.post(f"{dkim_base()}/{key_id}/activate", {}, htmx=True)
    assert refused.status_code == 422
    assert FIELD_ERROR.findall(refused.text) == [
        "Check DNS first: the record must be published and match."
    ]
    assert keys()[0].state == "new"
    missing = as_superuser.post(f"{dkim_base()}/{key_id}/check", {}, htmx=True)
    assert missing.status_code == 200 and "DKIM: missing" in missing.text
    assert key_states(missing.text)[key_id] == "new"
    dns.publish(*shown_records(made.text)[key_id])
    found = as_superuser.post(f"{dkim_base()}/{key_id}/check", {}, htmx=True)
    assert "DKIM: ok" in found.text and "published: DNS record matches" in found.text
    assert "Activate anyway" not in found.text
    activated = as_superuser.post(f"{dkim_base()}/{key_id}/activate", {}, htmx=True)
    assert activated.status_code == 200 and "active: signing" in activated.text


def test_activate_anyway_is_an_explicit_audited_force(as_superuser):
    (key_id,) = shown_records(generate(as_superuser).text)
    forced = as_superuser.post(f"{dkim_base()}/{key_id}/activate", {"force": "1"}, htmx=True)
    assert forced.status_code == 200 and key_states(forced.text)[key_id] == "active"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "dkim.activate"))
    assert entry.changes["forced"] == {"old": None, "new": True}
    assert "Activated without a matching DNS record" in forced.text


def test_a_wrong_record_in_dns_is_a_mismatch_and_activation_stays_off(as_superuser, dns):
    made = generate(as_superuser)
    (key_id,) = shown_records(made.text)
    name, _ = shown_records(made.text)[key_id]
    dns.publish(name, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong")
    checked = as_superuser.post(f"{dkim_base()}/{key_id}/check", {}, htmx=True)
    assert "DKIM: mismatch" in checked.text and key_states(checked.text)[key_id] == "new"


def test_remove_takes_the_key_off_the_list(as_superuser):
    (key_id,) = shown_records(generate(as_superuser).text)
    removed = as_superuser.post(f"{dkim_base()}/{key_id}/remove", {}, htmx=True)
    assert removed.status_code == 200 and "No DKIM keys yet" in removed.text
    assert keys() == []


def test_a_plain_form_post_comes_back_to_the_page(as_superuser, people):
    response = as_superuser.post(
        dkim_base(people.acme), {"dkim_domain": "acme.example.com", "dkim_selector": "s1"}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/companies/{people.acme.id}/email")


@pytest.mark.parametrize("action", ["check", "activate", "remove"])
def test_another_company_key_answers_404(as_acme, web, people, action):
    globex = Browser(web.test_client())
    globex.login(people.globex_admin.email)
    (globex_key,) = shown_records(
        generate(globex, "globex.example.com", company=people.globex).text
    )
    (global_key,) = shown_records(generate_global(web, people).text)
    for company, key_id in ((people.acme, globex_key), (people.acme, global_key)):
        response = as_acme.post(
            f"{dkim_base(company)}/{key_id}/{action}", {"force": "1"}, htmx=True
        )
        assert response.status_code == 404
    other = as_acme.post(f"{dkim_base(people.globex)}/{globex_key}/{action}", {}, htmx=True)
    assert other.status_code == 404
    assert [k.state for k in keys()] == ["new", "new"]


def generate_global(web, people):
    root = Browser(web.test_client())
    root.login(people.superuser.email)
    return generate(root, "example.com")


def test_a_company_admin_cannot_touch_the_global_keys(as_acme):
    assert generate(as_acme).status_code == 403
    assert as_acme.get(dkim_base(), htmx=True).status_code == 403
    assert keys() == []


def private_key_fragments() -> list[str]:
    """Pieces of every stored private key as they would appear if one leaked: PEM lines, joined.

    Past the modulus, which the public key (shown on the page) shares.
    """
    found = []
    for key in keys():
        pem = crypto.decrypt(key.private_key_encrypted)
        lines = [line for line in pem.splitlines() if "PRIVATE KEY" not in line]
        pieces = [lines[10], lines[-2], "".join(lines)[800:880]]
        assert not any(piece in key.public_key for piece in pieces)
        found += pieces
    return found


def readable(value: bytes) -> bytes:
    """A job's data as RQ stores it is zlib-compressed: search what it says."""
    try:
        return zlib.decompress(value)
    except zlib.error:
        return value


def redis_values() -> str:
    """Every value in Redis, job hashes decompressed."""
    connection = redis_client.connection()
    values = []
    for name in connection.scan_iter():
        kind = connection.type(name).decode()
        if kind == "string":
            values.append(repr(connection.get(name)))
        elif kind == "hash":
            fields = connection.hgetall(name).items()
            values.append(repr({k: readable(v) for k, v in fields}))
        elif kind == "list":
            values.append(repr(connection.lrange(name, 0, -1)))
        elif kind == "set":
            values.append(repr(connection.smembers(name)))
        elif kind == "zset":
            values.append(repr(connection.zrange(name, 0, -1)))
    return "\n".join(values)


def test_the_private_key_appears_in_no_page_response_log_job_or_outbox_row(
    as_superuser, people, server, dns, caplog
):
    configure(port=server.port)
    bodies = []
    with caplog.at_level(logging.DEBUG):
        key_id, *_ = publish_and_activate(as_superuser, dns, "example.com", "s1")
        bodies.append(generate(as_superuser, "example.com", "s2").text)
        bodies.append(generate(as_superuser, "", "s3").text)  # a 422
        for path in (f"{dkim_base()}/{key_id}/check", f"{dkim_base()}/{key_id}/activate"):
            bodies.append(as_superuser.post(path, {}, htmx=True).text)
        for url in ("/settings/mail", f"/companies/{people.acme.id}/email"):
            bodies += [as_superuser.get(url).text, as_superuser.get(url, htmx=True).text]
        bodies.append(as_superuser.get(dkim_base(), htmx=True).text)
        connection = redis_client.connection()
        listener = connection.pubsub(ignore_subscribe_messages=True)
        listener.subscribe(handoff.wake_channel(connection))
        (message,) = queue(people.acme)
        handoff_hash = redis_values()
        wakeups = (listener.get_message(timeout=0.1) for _ in range(50))  # 5 s at most
        wakeup = next((m for m in wakeups if m), None)
        listener.close()
        run_queued_jobs()
    assert (
        len(server.handler.messages) == 1 and b"DKIM-Signature" in server.handler.messages[0].data
    )
    stored = db.session.execute(
        text("SELECT raw, sealed_raw, last_reply, subject FROM outbox_messages")
    ).one()
    fragments = private_key_fragments()
    assert len(fragments) == 6
    for fragment in fragments:
        for body in bodies:
            assert fragment not in body
        assert fragment not in caplog.text
        assert fragment not in handoff_hash and fragment not in redis_values()
        assert fragment.encode() not in b"".join(
            v or b"" for v in stored[:2] if isinstance(v, bytes)
        )
        assert fragment not in repr(stored)
        assert fragment not in repr(wakeup)
    # The worker was woken, with the mail's lane only: a hash of where the mail goes.
    assert (
        wakeup is not None
        and wakeup["data"].decode() == db.session.get(OutboxMessage, message.id).lane
    )


def test_a_polish_admin_reads_the_section_and_the_dns_check_in_polish(as_superuser, people, dns):
    people.superuser.language = "pl"
    db.session.commit()
    configure(host="203.0.113.7")  # the relay SPF is checked against
    dns.publish("example.com", "v=spf1 bogus -all")
    made = generate(as_superuser, "example.com", "s1")
    (key_id,) = shown_records(made.text)
    assert "<h2>Podpisywanie DKIM</h2>" in made.text
    assert ">Wygeneruj klucz</button>" in made.text and ">Sprawdź DNS</button>" in made.text
    assert "nowy: jeszcze nie znaleziono w DNS" in made.text
    assert "Domena nadawcy" in made.text  # the form's label

    checked = as_superuser.post(f"{dkim_base()}/{key_id}/check", {}, htmx=True)
    name, value = shown_records(made.text)[key_id]
    assert f"<strong>DKIM: brak</strong> Brak rekordu DKIM pod {name}: opublikuj" in checked.text
    assert f"Opublikuj rekord TXT pod {name} z wartością „{value}”." in checked.text
    assert (
        "Nie można ocenić SPF domeny example.com (nieznany mechanizm SPF &#39;bogus&#39; "
        "w rekordzie domeny example.com): popraw rekord."
    ) in checked.text  # the reason inside the sentence is translated too
    assert "sprawdzono <time" in checked.text  # the verdict kept on the key, dated
    assert 'data-record="DKIM"' in checked.text  # what the page and its tests read stays as is
    refused = as_superuser.post(f"{dkim_base()}/{key_id}/activate", {}, htmx=True)
    assert FIELD_ERROR.findall(refused.text) == [
        "Najpierw sprawdź DNS: rekord musi być opublikowany i zgodny."
    ]
    taken = generate(as_superuser, "example.com", "s1")
    assert "Domena example.com ma już klucz z selektorem s1: wybierz inny." in taken.text
