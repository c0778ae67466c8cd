"""DKIM keys of a scope: generate, the record to publish, the DNS check, activate, rotate, remove.

The private key is encrypted at rest and leaves this module only decrypted for signing.
Every change is audited in the scope's history. Its refusals are written in the language of the
request that asks (English without one): they go straight to the screen, never to storage.
"""

import base64
import re
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask_babel import gettext as _
from sqlalchemy import select

from portal import audit, crypto
from portal.exceptions import DkimKeyError
from portal.extensions import db
from portal.models import (
    DKIM_ACTIVE,
    DKIM_NEW,
    DKIM_PUBLISHED,
    DKIM_RETIRED,
    Company,
    DkimKey,
    User,
    utcnow,
)
from portal.wire.dkim_sign import SigningKey
from portal.wire.dnscheck import Finding

RSA_BITS = 2048
SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _scope(company: Company | None):
    return DkimKey.company_id.is_(None) if company is None else DkimKey.company_id == company.id


def _company(key: DkimKey) -> Company | None:
    return db.session.get(Company, key.company_id) if key.company_id is not None else None


def default_selector() -> str:
    """`portal<yyyymm>`: the month a key was made tells keys apart at a glance."""
    return f"portal{utcnow():%Y%m}"


def domain_problem(domain: str) -> str | None:
    """Why this is not a sender domain a key can be made for; None when it is one."""
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(DOMAIN_LABEL.match(x) for x in labels):
        return _("Enter a domain name such as example.com.")
    return None


def selector_problem(selector: str) -> str | None:
    if not SELECTOR.match(selector):
        return _(
            "Use letters, digits and hyphens (up to 63), e.g. %(example)s.", example="portal202612"
        )
    return None


def scope_keys(company: Company | None) -> list[DkimKey]:
    """The scope's keys, by domain, newest first."""
    query = select(DkimKey).where(_scope(company))
    return list(db.session.scalars(query.order_by(DkimKey.domain, DkimKey.id.desc())))


def generate(company: Company | None, domain: str, selector: str, user: User | None) -> DkimKey:
    """A new RSA-2048 key (state new) for the domain, audited; the caller commits."""
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    for field, problem in (
        ("domain", domain_problem(domain)),
        ("selector", selector_problem(selector)),
    ):
        if problem:
            raise DkimKeyError(field, problem)
    taken = select(DkimKey.id).where(_scope(company), DkimKey.domain == domain)
    if db.session.scalar(taken.where(DkimKey.selector == selector)) is not None:
        message = _(
            "%(domain)s has a key with the selector %(selector)s: choose another.",
            domain=domain,
            selector=selector,
        )
        raise DkimKeyError("selector", message)
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = DkimKey(
        company_id=company.id if company is not None else None,
        domain=domain,
        selector=selector,
        algorithm="rsa",
        private_key_encrypted=crypto.encrypt(pem.decode()),
        public_key=base64.b64encode(der).decode(),
        state=DKIM_NEW,
        created_by_id=user.id if user is not None else None,
    )
    db.session.add(key)
    db.session.flush()
    audit.record("dkim.generate", {"dkim_key": {"old": None, "new": label(key)}}, user, company)
    return key


def label(key: DkimKey) -> str:
    return f"{key.selector}._domainkey.{key.domain}"


def record_name(key: DkimKey) -> str:
    """Where the TXT record goes."""
    return label(key)


def record_value(key: DkimKey) -> str:
    """The TXT record to publish."""
    return f"v=DKIM1; k={key.algorithm}; p={key.public_key}"


def record_check(key: DkimKey, findings: Sequence[Finding], user: User | None) -> None:
    """Keep the DNS check's DKIM verdict on the key; a new key whose record matches is published."""
    dkim = next(f for f in findings if f.record == "DKIM")
    old_state = key.state
    key.dns_status, key.dns_checked_at = dkim.status, utcnow()
    if dkim.status == "ok" and key.state == DKIM_NEW:
        key.state = DKIM_PUBLISHED
    changes: dict = {"dkim_key": label(key)}
    changes.update({f.record.lower(): {"old": None, "new": f.status} for f in findings})
    if key.state != old_state:
        changes["state"] = {"old": old_state, "new": key.state}
    audit.record("dkim.check", changes, user, _company(key))


def can_activate(key: DkimKey) -> bool:
    """Whether the DNS check found the record: only then is Activate offered without force."""
    return key.state in (DKIM_PUBLISHED, DKIM_RETIRED) and key.dns_status == "ok"


def activate(key: DkimKey, user: User | None, force: bool = False) -> None:
    """The key signs its domain's mail from now on; the one before is retired. Caller commits.

    Without `force` only after the DNS check found the record; a forced activation is audited
    as such, since receivers cannot verify mail signed with a key they cannot find.
    """
    if key.state == DKIM_ACTIVE:
        return
    if not force and not can_activate(key):
        message = _("Check DNS first: the record must be published and match.")
        raise DkimKeyError("activate", message)
    now = utcnow()
    current = db.session.scalars(
        select(DkimKey).where(
            DkimKey.company_id.is_(None)
            if key.company_id is None
            else DkimKey.company_id == key.company_id,
            DkimKey.domain == key.domain,
            DkimKey.state == DKIM_ACTIVE,
        )
    )
    changes = {}
    for old in current:
        old.state, old.retired_at = DKIM_RETIRED, now
        changes["retired"] = {"old": label(old), "new": None}
    old_state = key.state
    key.state, key.activated_at, key.retired_at = DKIM_ACTIVE, now, None
    key.activated_by_id = user.id if user is not None else None
    changes["state"] = {"old": old_state, "new": DKIM_ACTIVE}
    changes["dkim_key"] = label(key)
    if force:
        changes["forced"] = {"old": None, "new": True}
    audit.record("dkim.activate", changes, user, _company(key))


def remove(key: DkimKey, user: User | None) -> None:
    """Delete the key, audited; an active one stops signing at once. Caller commits."""
    changes = {
        "dkim_key": {"old": label(key), "new": None},
        "state": {"old": key.state, "new": None},
    }
    audit.record("dkim.remove", changes, user, _company(key))
    db.session.delete(key)


def signs_any(company_id: int | None) -> bool:
    """Whether the scope has an active key for some domain (else its mail goes out unsigned)."""
    scope = DkimKey.company_id.is_(None) if company_id is None else DkimKey.company_id == company_id
    query = select(DkimKey.id).where(scope, DkimKey.state == DKIM_ACTIVE).limit(1)
    return db.session.scalar(query) is not None


def signing_key(company_id: int | None, domain: str) -> SigningKey | None:
    """The scope's active key for the domain, decrypted for signing; None when it has none."""
    scope = DkimKey.company_id.is_(None) if company_id is None else DkimKey.company_id == company_id
    key = db.session.scalar(
        select(DkimKey).where(scope, DkimKey.domain == domain, DkimKey.state == DKIM_ACTIVE)
    )
    if key is None:
        return None
    pem = crypto.decrypt(key.private_key_encrypted).encode()
    return SigningKey(domain=key.domain, selector=key.selector, private_pem=pem)
