"""The settings history: who changed what, when, with old and new values."""

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, Company, User

FIELD_LABELS = {
    "host": "Host",
    "port": "Port",
    "security": "Security",
    "auth_enabled": "Authentication",
    "username": "User",
    "password": "Password",
    "auth_method": "Authentication method",
    "oauth_client_id": "Client ID",
    "client_secret": "Client secret",
    "oauth_authorize_url": "Authorization endpoint",
    "oauth_token_url": "Token endpoint",
    "oauth_revoke_url": "Revocation endpoint",
    "oauth_scopes": "Scopes",
    "oauth": "OAuth2 authorization",
    "default_sender_enabled": "Default sender",
    "sender_address": "Sender address",
    "sender_name": "Sender name",
    "all_use_default_sender": "All notifications use the default sender",
    "group_sends": "Group sends every 2 s",
    "timeout_seconds": "SMTP timeout",
    "reply_to": "Reply-To",
    "footer_html": "HTML footer",
    "use_own_mail_settings": "Use company-specific mail settings",
    "egress_allowlist": "Allowed internal relays",
    "egress_extra_ports": "Additional SMTP ports",
    "retention_days": "Keep sent mail (days)",
    "server": "Server",
    "result": "Result",
    "name": "Name",
    "email": "Email",
}


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
