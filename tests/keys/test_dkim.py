"""DKIM keys: generated, encrypted at rest, activated only after the DNS check or by force."""

import base64

import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import select

from portal import crypto
from portal.exceptions import DkimKeyError
from portal.extensions import db
from portal.keys import dkim
from portal.models import AuditEntry, DkimKey
from portal.wire.dnscheck import Finding


def finding(status: str) -> list[Finding]:
    return [
        Finding("DKIM", status, None, "", None),
        Finding("SPF", "ok", None, "", None),
        Finding("DMARC", "weak", None, "", None),
    ]


def actions() -> list[tuple[str, dict]]:
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    return [(e.action, e.changes) for e in entries]


def test_a_new_key_is_rsa_2048_its_record_names_the_selector_and_its_private_part_is_sealed(
    app, people
):
    key = dkim.generate(people.acme, "Acme.Example.COM.", "portal202612", people.acme_admin)
    db.session.commit()
    assert (key.domain, key.selector, key.state) == ("acme.example.com", "portal202612", "new")
    assert dkim.record_name(key) == "portal202612._domainkey.acme.example.com"
    assert dkim.record_value(key) == f"v=DKIM1; k=rsa; p={key.public_key}"
    assert load_der_public_key(base64.b64decode(key.public_key)).key_size == 2048
    assert "PRIVATE KEY" not in key.private_key_encrypted
    assert "BEGIN RSA PRIVATE KEY" in crypto.decrypt(key.private_key_encrypted)
    assert actions() == [
        (
            "dkim.generate",
            {"dkim_key": {"old": None, "new": "portal202612._domainkey.acme.example.com"}},
        )
    ]


@pytest.mark.parametrize(
    ("domain", "selector", "field"),
    [
        ("localhost", "s1", "domain"),
        ("exa mple.com", "s1", "domain"),
        ("a.com", "bad_sel", "selector"),
    ],
)
def test_bad_domain_or_selector_is_refused_and_nothing_is_saved(
    app, people, domain, selector, field
):
    with pytest.raises(DkimKeyError) as refused:
        dkim.generate(people.acme, domain, selector, people.acme_admin)
    assert refused.value.field == field
    db.session.rollback()
    assert db.session.scalar(select(DkimKey)) is None


def test_a_selector_is_used_once_per_domain_and_scope(app, people):
    dkim.generate(people.acme, "acme.example.com", "s1", None)
    dkim.generate(people.globex, "acme.example.com", "s1", None)  # another scope
    dkim.generate(people.acme, "other.example.com", "s1", None)  # another domain
    with pytest.raises(DkimKeyError) as refused:
        dkim.generate(people.acme, "acme.example.com", "s1", None)
    assert refused.value.field == "selector"


def test_activation_waits_for_a_matching_record(app, people):
    key = dkim.generate(people.acme, "acme.example.com", "s1", None)
    with pytest.raises(DkimKeyError):
        dkim.activate(key, people.acme_admin)
    dkim.record_check(key, finding("mismatch"), people.acme_admin)
    assert key.state == "new" and not dkim.can_activate(key)
    with pytest.raises(DkimKeyError):
        dkim.activate(key, people.acme_admin)
    dkim.record_check(key, finding("ok"), people.acme_admin)
    assert key.state == "published" and dkim.can_activate(key)
    dkim.activate(key, people.acme_admin)
    assert key.state == "active" and key.activated_by_id == people.acme_admin.id
    checks = [changes for action, changes in actions() if action == "dkim.check"]
    assert checks[-1]["state"] == {"old": "new", "new": "published"}
    assert checks[-1]["dkim"] == {"old": None, "new": "ok"}


def test_a_forced_activation_is_audited_as_forced(app, people):
    key = dkim.generate(None, "example.com", "s1", people.superuser)
    dkim.activate(key, people.superuser, force=True)
    db.session.commit()
    assert key.state == "active"
    (activated,) = [changes for action, changes in actions() if action == "dkim.activate"]
    assert activated["forced"] == {"old": None, "new": True}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "dkim.activate"))
    assert entry.company_id is None


def test_rotation_retires_the_old_key_which_stays_listed_until_removed(app, people):
    old = dkim.generate(people.acme, "acme.example.com", "s1", None)
    dkim.activate(old, None, force=True)
    new = dkim.generate(people.acme, "acme.example.com", "s2", None)
    assert dkim.signing_key(people.acme.id, "acme.example.com").selector == "s1"
    dkim.record_check(new, finding("ok"), None)
    dkim.activate(new, None)
    assert (old.state, new.state) == ("retired", "active") and old.retired_at is not None
    assert dkim.signing_key(people.acme.id, "acme.example.com").selector == "s2"
    assert [k.selector for k in dkim.scope_keys(people.acme)] == ["s2", "s1"]
    dkim.remove(old, None)
    db.session.commit()
    assert [k.selector for k in dkim.scope_keys(people.acme)] == ["s2"]
    assert [a for a, _ in actions()][-1] == "dkim.remove"


def test_a_key_signs_only_for_its_own_scope_and_domain(app, people):
    key = dkim.generate(people.acme, "acme.example.com", "s1", None)
    dkim.activate(key, None, force=True)
    db.session.commit()
    assert dkim.signing_key(people.acme.id, "acme.example.com") is not None
    assert dkim.signing_key(people.globex.id, "acme.example.com") is None
    assert dkim.signing_key(None, "acme.example.com") is None
    assert dkim.signing_key(people.acme.id, "example.com") is None


def test_removing_the_active_key_stops_signing(app, people):
    key = dkim.generate(None, "example.com", "s1", None)
    dkim.activate(key, None, force=True)
    dkim.remove(key, None)
    db.session.commit()
    assert dkim.signing_key(None, "example.com") is None


def test_the_signing_key_never_shows_its_private_part_in_its_repr(app, people):
    key = dkim.generate(None, "example.com", "s1", None)
    dkim.activate(key, None, force=True)
    signing = dkim.signing_key(None, "example.com")
    assert b"PRIVATE KEY" in signing.private_pem
    assert "PRIVATE" not in repr(signing)
