"""Database tables: users, companies, mail configurations and the audit trail."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db

Timestamp = DateTime(timezone=True)
SECURITY_NONE = "none"
SECURITY_STARTTLS = "starttls"
SECURITY_SSL = "ssl"
SECURITY_CHOICES = (SECURITY_NONE, SECURITY_STARTTLS, SECURITY_SSL)


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


class Company(db.Model):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    use_own_mail_settings: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    admins: Mapped[list["User"]] = relationship(back_populates="company", order_by="User.email")
    mail_config: Mapped["MailConfig | None"] = relationship(back_populates="company")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(default=False)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="admins")

    @property
    def display_name(self) -> str:
        return self.name or self.email


class MailConfig(db.Model):
    """One SMTP configuration: the global one (no company) or a company's own."""

    __tablename__ = "mail_configs"
    __table_args__ = (
        # At most one global row: an index over a constant for the rows without a company.
        Index(
            "uq_mail_configs_global",
            text("(company_id IS NULL)"),
            unique=True,
            sqlite_where=text("company_id IS NULL"),
            postgresql_where=text("company_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), unique=True)
    host: Mapped[str | None] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(default=25)
    security: Mapped[str] = mapped_column(String(16), default=SECURITY_NONE)
    auth_enabled: Mapped[bool] = mapped_column(default=False)
    username: Mapped[str | None] = mapped_column(String(320))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    default_sender_enabled: Mapped[bool] = mapped_column(default=False)
    sender_address: Mapped[str | None] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(120))
    all_use_default_sender: Mapped[bool] = mapped_column(default=False)
    group_sends: Mapped[bool] = mapped_column(default=False)
    timeout_seconds: Mapped[int] = mapped_column(default=180)
    reply_to: Mapped[str | None] = mapped_column(String(320))
    footer_html: Mapped[str | None] = mapped_column(Text)
    footer_text: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="mail_config")

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)


class AuditEntry(db.Model):
    """A recorded change: who, when, what, and each field's old and new value."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_company_created", "company_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    actor: Mapped[User | None] = relationship()
