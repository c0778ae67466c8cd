"""Companies' API keys: create (shown once), look up, list, revoke; only hashes are stored."""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from portal import audit
from portal.extensions import db
from portal.models import ApiKey, Company, User, as_utc, utcnow
from portal.tenancy import scoped

KEY_PREFIX = "pk_"
KEY_RANDOM_BYTES = 32
SHOWN_PREFIX_CHARS = 8
# last_used_at is written at most this often per key: a busy key must not serialize on its row.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(token: str) -> str:
    """The stored form of a key: its SHA-256, hex (keys are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create(company: Company, name: str, user: User | None) -> tuple[ApiKey, str]:
    """A new key for the company, audited; returns the row and the key, which is never stored."""
    token = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key = ApiKey(
        company_id=company.id,
        name=name,
        prefix=token[:SHOWN_PREFIX_CHARS],
        key_hash=hash_key(token),
        created_by_id=user.id if user is not None else None,
    )
    db.session.add(key)
    audit.record("apikey.create", {"name": {"old": None, "new": name}}, user, company)
    return key, token


def revoke(key: ApiKey, user: User | None) -> None:
    """Stop the key working from now on; revoking twice changes nothing."""
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    audit.record("apikey.revoke", {"name": {"old": key.name, "new": None}}, user, key.company)


def authenticate(token: str) -> ApiKey | None:
    """The live key with this value, its use noted; None for unknown or revoked keys."""
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - as_utc(key.last_used_at) >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key


def company_keys(company: Company) -> list[ApiKey]:
    query = scoped(select(ApiKey), ApiKey, company.id)
    return list(db.session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))
