"""The settings history: who changed what, when, with old and new values."""

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, Company, User
from portal.tenancy import Scope, scoped

# Tests change nothing: the short lists beside the settings leave them out.
TEST_ACTIONS = ("mail_settings.test", "mail_settings.test_mail")
DEFAULT_PAGE_SIZE = 25  # entries per history page


@dataclass(frozen=True)
class HistoryPage:
    entries: list[AuditEntry]
    number: int  # 1 is the newest page
    has_older: bool


def record(action: str, changes: dict, actor: User | None, company: Company | None) -> None:
    """Add an audit row to the current transaction when something changed."""
    if not changes:
        return
    db.session.add(
        AuditEntry(
            action=action,
            changes=changes,
            actor_id=actor.id if actor is not None else None,
            company_id=company.id if company is not None else None,
        )
    )


def _newest_first(query):
    return query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())


def recent(company: Company | None, limit: int | None = None) -> list[AuditEntry]:
    """The latest changes of one company, or of the global scope when company is None; no tests."""
    limit = limit or current_app.config["AUDIT_ROWS_SHOWN"]
    scope = (
        AuditEntry.company_id.is_(None) if company is None else AuditEntry.company_id == company.id
    )
    query = select(AuditEntry).where(scope, AuditEntry.action.not_in(TEST_ACTIONS))
    return list(db.session.scalars(_newest_first(query).limit(limit)))


def page(
    scope: Scope,
    actions: Sequence[str] | None = None,
    number: int = 1,
    size: int = DEFAULT_PAGE_SIZE,
) -> HistoryPage:
    """One page of the history a scope may see, newest first; `actions` None means all."""
    query = scoped(select(AuditEntry), AuditEntry, scope)
    if actions is not None:
        query = query.where(AuditEntry.action.in_(list(actions)))
    query = _newest_first(query).offset((number - 1) * size).limit(size + 1)
    entries = list(db.session.scalars(query))
    return HistoryPage(entries[:size], number, len(entries) > size)
