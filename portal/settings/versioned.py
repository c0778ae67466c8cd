"""Effective settings resolved once per configuration version and kept by each process.

A company's snapshot depends on three things only: its "use company-specific settings"
switch, its own configuration row and the global row. Every change to a row moves its
`updated_at` (the column's onupdate, for ORM and Core updates alike), and a row removed and
made again has a new id, so (switch, own id, own updated_at, global id, global updated_at) is
a version stamp. One small query reads the stamp on every call; a snapshot is made again
when the stamp differs from the one it was made from, so a change committed anywhere, in
any process, is used by the next call that can see it.
"""

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.models import Company, MailConfig, stored_id
from portal.settings.resolution import EffectiveSettings, merge, resolve, session_key

EXTENSION = "portal.settings.versioned"  # the app's cache, in app.extensions
MAX_ENTRIES = 10_000  # companies; past it the cache starts over (bounded memory)

# (switch, own id, own updated_at, global id, global updated_at)
Stamp = tuple[bool, int | None, datetime | None, int | None, datetime | None]

_OWN = aliased(MailConfig, name="own")
_GLOBAL = aliased(MailConfig, name="glob")
# Built once, with a bound parameter: SQLAlchemy then keys its compiled form once too.
_COMPANY_STAMP = (
    select(Company.use_own_mail_settings, _OWN.id, _OWN.updated_at, _GLOBAL.id, _GLOBAL.updated_at)
    .select_from(Company)
    .outerjoin(_OWN, _OWN.company_id == Company.id)
    .outerjoin(_GLOBAL, _GLOBAL.company_id.is_(None))
    .where(Company.id == bindparam("company_id"))
)
_GLOBAL_STAMP = select(MailConfig.id, MailConfig.updated_at).where(MailConfig.company_id.is_(None))


@dataclass(frozen=True)
class Current:
    """The settings in force for a company, the lane its mail goes out on, and their version."""

    settings: EffectiveSettings
    lane: str
    stamp: Stamp | None


def _stamp(company_id: int | None) -> Stamp | None:
    """The version of the settings in force, as this transaction sees it now; None: no company.

    Pending changes are flushed first, as a query through the session would; the statement
    itself goes to the session's connection, past the ORM's per-query work.
    """
    db.session.flush()
    connection = db.session.connection()
    if company_id is None:
        row = connection.execute(_GLOBAL_STAMP).first()
        return (False, None, None, *row) if row is not None else (False, None, None, None, None)
    row = connection.execute(_COMPANY_STAMP, {"company_id": company_id}).first()
    return tuple(row) if row is not None else None  # type: ignore[return-value]


def _load(company_id: int | None, use_own: bool) -> tuple[EffectiveSettings, Stamp]:
    """A snapshot from the rows read afresh, and the stamp of exactly those rows.

    populate_existing: rows this session loaded earlier are overwritten with what the database
    holds now, so the snapshot is never older than the stamp it is kept under.
    """
    query = select(MailConfig).execution_options(populate_existing=True)
    if company_id is None:
        query = query.where(MailConfig.company_id.is_(None))
    else:
        query = query.where(
            (MailConfig.company_id.is_(None)) | (MailConfig.company_id == company_id)
        )
    rows = {row.company_id: row for row in db.session.scalars(query)}
    glob = rows.get(None)
    own = rows.get(company_id) if company_id is not None else None
    stamp: Stamp = (
        use_own,
        own.id if own is not None else None,
        own.updated_at if own is not None else None,
        glob.id if glob is not None else None,
        glob.updated_at if glob is not None else None,
    )
    return merge(company_id, glob, own if use_own else None), stamp


def resolve_current(company: Company | None) -> Current:
    """The settings in force for a company (None: global), made again only after a change.

    Reads one small row per call; does not commit. The snapshot is the one resolve() gives.
    """
    key = stored_id(company)
    stamp = _stamp(key)
    if stamp is None:  # not stored (yet, or any more): resolve() says what that means
        settings = resolve(company)
        return Current(settings, session_key(settings), None)
    cache: dict[int | None, Current] = current_app.extensions.setdefault(EXTENSION, {})
    found = cache.get(key)
    if found is not None and found.stamp == stamp:
        return found
    settings, loaded = _load(key, stamp[0])
    found = Current(settings, session_key(settings), loaded)
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    cache[key] = found
    return found
