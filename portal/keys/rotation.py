"""Re-encryption of every stored secret with the newest key of PORTAL_ENCRYPTION_KEYS.

Each kind of secret is walked by id in batches, and each batch is committed, so a run
stopped half-way keeps what it did and the next run carries on: a secret the newest key
made already is left alone. Only counts come out, never a secret.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from portal import crypto
from portal.exceptions import SecretError
from portal.extensions import db
from portal.models import DkimKey, MailConfig, OAuthGrant, OutboxMessage

DEFAULT_BATCH_SIZE = 100  # rows per commit; a sealed mail may be large, so not many more


@dataclass(frozen=True)
class Kind:
    """A column that holds a secret encrypted with `crypto`, and what to call it."""

    name: str
    column: InstrumentedAttribute
    binary: bool = False  # bytes (a whole mail) rather than a token as text


# Every column written by crypto.encrypt or crypto.encrypt_bytes. API keys are hashed, not
# encrypted, so rotation has nothing to do for them.
KINDS = (
    Kind("SMTP passwords", MailConfig.password_encrypted),
    Kind("OAuth2 client secrets", MailConfig.oauth_client_secret_encrypted),
    Kind("OAuth2 refresh tokens", OAuthGrant.refresh_token_encrypted),
    Kind("OAuth2 access tokens", OAuthGrant.access_token_encrypted),
    Kind("DKIM private keys", DkimKey.private_key_encrypted),
    Kind("sealed mails (one-time links)", OutboxMessage.sealed_raw, binary=True),
)


@dataclass
class Counts:
    """What a run did to one kind of secret."""

    rotated: int = 0
    current: int = 0  # the newest key made it already
    unreadable: int = 0  # no configured key opens it: left as it was
    changed: int = 0  # saved anew while the run read it: its writer's value stays


def _batches(kind: Kind, size: int) -> Iterator[list]:
    """(id, token) of the kind's rows that hold one, by id, `size` at a time."""
    table = kind.column.class_
    last = None
    while True:
        query = select(table.id, kind.column).where(kind.column.is_not(None))
        if last is not None:
            query = query.where(table.id > last)
        rows = db.session.execute(query.order_by(table.id).limit(size)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def rotate(kind: Kind, batch_size: int = DEFAULT_BATCH_SIZE) -> Counts:
    """Re-encrypt the kind's secrets with the newest key (commits once per batch)."""
    table, counts = kind.column.class_, Counts()
    for rows in _batches(kind, batch_size):
        for row_id, stored in rows:
            token = stored if kind.binary else stored.encode()
            try:
                fresh = crypto.rotated(token)
            except SecretError:
                counts.unreadable += 1
                continue
            if fresh is None:
                counts.current += 1
                continue
            # Only over the value read: a password saved or a token refreshed meanwhile is
            # newer than ours and stays. OAuthGrant.version is left alone for the same reason:
            # a worker writing a refreshed token over the version it read must still succeed.
            written = db.session.execute(
                update(table)
                .where(table.id == row_id, kind.column == stored)
                .values({kind.column.key: fresh if kind.binary else fresh.decode()})
                .execution_options(synchronize_session=False)
            )
            if written.rowcount:
                counts.rotated += 1
            else:
                counts.changed += 1
        db.session.commit()
    return counts


def rotate_all(batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[Kind, Counts]]:
    """Rotate every kind in turn, yielding each one's counts when it is done."""
    for kind in KINDS:
        yield kind, rotate(kind, batch_size)
