"""The settings history: who changed what, when, with old and new values."""

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, Company, User


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


def recent(company: Company | None, limit: int | None = None) -> list[AuditEntry]:
    """The latest entries of one company, or of the global scope when company is None."""
    limit = limit or current_app.config["AUDIT_ROWS_SHOWN"]
    scope = (
        AuditEntry.company_id.is_(None) if company is None else AuditEntry.company_id == company.id
    )
    query = select(AuditEntry).where(scope)
    query = query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(limit)
    return list(db.session.scalars(query))
