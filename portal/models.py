"""The database tables: users, companies, mail settings, OAuth2 grants, outbox, keys, audit."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    inspect,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db

Timestamp = DateTime(timezone=True)
SECURITY_NONE = "none"
SECURITY_STARTTLS = "starttls"
SECURITY_SSL = "ssl"
SECURITY_CHOICES = (SECURITY_NONE, SECURITY_STARTTLS, SECURITY_SSL)
DEFAULT_TIMEOUT_SECONDS = 180  # seconds per SMTP step, unless a configuration says otherwise
AUTH_PASSWORD = "password"  # noqa: S105 - a method name
AUTH_GOOGLE = "google"
AUTH_MICROSOFT = "microsoft"
AUTH_OAUTH_OTHER = "oauth2"


def oauth_in_use(auth_enabled: bool | None, auth_method: str | None) -> bool:
    """Whether these settings sign in with OAuth2 (XOAUTH2) rather than a password."""
    return bool(auth_enabled) and auth_method not in (None, AUTH_PASSWORD)


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


def stored_id(row: object | None) -> int | None:
    """A row's id without loading it: after a commit a row's attributes are expired."""
    if row is None:
        return None
    identity = inspect(row).identity
    return identity[0] if identity is not None else row.id


def as_utc(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands back naive values)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Company(db.Model):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    use_own_mail_settings: Mapped[bool] = mapped_column(default=False)
    # The language of its admins who chose none (portal.i18n.LANGUAGES); None: their browser's.
    default_language: Mapped[str | None] = mapped_column(String(8))
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
    # The user's own choice of language (portal.i18n.LANGUAGES); None: the company's or browser's.
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Raised on logout and on a new password: sessions opened under an older one are refused.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    company: Mapped[Company | None] = relationship(back_populates="admins")

    def get_id(self) -> str:
        """What the session cookie names: the user and the generation it was opened under."""
        return f"{self.id}:{self.session_generation}"

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
    # "password" or an OAuth2 provider; the OAuth2 fields below are used by the latter only.
    auth_method: Mapped[str] = mapped_column(
        String(16), default=AUTH_PASSWORD, server_default=AUTH_PASSWORD
    )
    oauth_client_id: Mapped[str | None] = mapped_column(String(512))
    oauth_client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_authorize_url: Mapped[str | None] = mapped_column(String(2000))
    oauth_token_url: Mapped[str | None] = mapped_column(String(2000))
    oauth_revoke_url: Mapped[str | None] = mapped_column(String(2000))
    oauth_scopes: Mapped[str | None] = mapped_column(String(1000))
    default_sender_enabled: Mapped[bool] = mapped_column(default=False)
    sender_address: Mapped[str | None] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(120))
    all_use_default_sender: Mapped[bool] = mapped_column(default=False)
    group_sends: Mapped[bool] = mapped_column(default=False)
    # Concurrent SMTP sessions the worker may open to this configuration's server.
    max_sessions: Mapped[int | None] = mapped_column()
    timeout_seconds: Mapped[int] = mapped_column(default=DEFAULT_TIMEOUT_SECONDS)
    reply_to: Mapped[str | None] = mapped_column(String(320))
    footer_html: Mapped[str | None] = mapped_column(Text)
    footer_text: Mapped[str | None] = mapped_column(Text)
    # Global only: internal relays SMTP may reach (hosts, IPs, CIDRs) and extra allowed ports.
    egress_allowlist: Mapped[str | None] = mapped_column(Text)
    egress_extra_ports: Mapped[str | None] = mapped_column(String(200))
    # Global only: how long sent mail is kept (days); 0 deletes it right after sending.
    retention_days: Mapped[int | None] = mapped_column()
    # A company's row: which groups of fields it sets for itself; the others follow the global
    # row. Rows saved before per-group settings set every group, as they did then.
    override_server: Mapped[bool] = mapped_column(default=True, server_default=true())
    override_auth: Mapped[bool] = mapped_column(default=True, server_default=true())
    override_sender: Mapped[bool] = mapped_column(default=True, server_default=true())
    override_delivery: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Global only: mail domains of this network (empresa.local) accepted although special-use.
    internal_domains: Mapped[str | None] = mapped_column(Text)
    # PEM certificates this configuration's server may be signed by, besides the system's CAs.
    ca_bundle: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="mail_config")
    grant: Mapped["OAuthGrant | None"] = relationship(
        back_populates="mail_config", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def has_client_secret(self) -> bool:
        return bool(self.oauth_client_secret_encrypted)

    @property
    def uses_oauth(self) -> bool:
        return oauth_in_use(self.auth_enabled, self.auth_method)


class OAuthGrant(db.Model):
    """A mailbox's OAuth2 authorization: the refresh token and the cached access token.

    One worker at a time refreshes (`refresh_lease_until`). Every change bumps `version`;
    writers update only the version they read, so a rotated refresh token is never
    overwritten by a worker that read the row before.
    """

    __tablename__ = "oauth_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_config_id: Mapped[int] = mapped_column(
        ForeignKey("mail_configs.id", ondelete="CASCADE"), unique=True
    )
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    connected_as: Mapped[str] = mapped_column(String(320))
    connected_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Set when the provider refused the refresh token (invalid_grant): an admin must authorize.
    reauth_needed: Mapped[bool] = mapped_column(default=False)
    problem: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    # Held by the one worker asking the provider for a new token; the others wait for it.
    refresh_lease_until: Mapped[datetime | None] = mapped_column(Timestamp)

    mail_config: Mapped[MailConfig] = relationship(back_populates="grant")


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


STATUS_QUEUED = "queued"
STATUS_SENDING = "sending"
STATUS_SENT = "sent"
STATUS_DEFERRED = "deferred"
STATUS_FAILED = "failed"
STATUS_UNKNOWN = "unknown"
FINAL_STATUSES = (STATUS_SENT, STATUS_FAILED, STATUS_UNKNOWN)


class OutboxMessage(db.Model):
    """A mail to deliver: the system of record, whatever Redis holds."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_messages_group_status", "group_key", "status"),
        Index("ix_outbox_messages_lane_status", "lane", "status"),
        Index("ix_outbox_messages_company_created", "company_id", "created_at", "id"),
        Index("ix_outbox_messages_created", "created_at", "id"),
        Index(
            "ix_outbox_messages_company_status_created", "company_id", "status", "created_at", "id"
        ),
        # The queue dashboard's mail sent per minute: one range of the sent mail's recent end.
        Index("ix_outbox_messages_status_sent", "status", "sent_at"),
        # A mail's detail lists its resends; PostgreSQL does not index a foreign key by itself.
        Index("ix_outbox_messages_resend_of", "resend_of_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Unique and made by the portal: it matches the ids RETURNING gives to the rows of one
    # multi-row INSERT, so a batch is one statement on SQLite too (not one per row).
    message_id: Mapped[str] = mapped_column(String(255), unique=True, insert_sentinel=True)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_QUEUED)
    # Mails with the same key share an SMTP configuration and one session; None: sent alone.
    group_key: Mapped[str | None] = mapped_column(String(64))
    # The SMTP destination's key (settings.resolution.session_key): the worker schedules by it.
    # None for mail queued before lanes, or whose settings changed: the worker lanes it anew.
    lane: Mapped[str | None] = mapped_column(String(64))
    # Fencing: the delivery session holding the claim; only its outcome is recorded.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # A body with a one-time link (invitation, reset) is never kept in clear: `raw` holds its
    # headers only and `sealed_raw` the whole mail, encrypted, until its final outcome.
    one_time_link: Mapped[bool] = mapped_column(default=False, server_default=false())
    sealed_raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A test mail an admin queued from the mail settings screens: the mail log marks it.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())
    size: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_reply: Mapped[str | None] = mapped_column(Text)
    # recipient -> {"status": "sent" | "failed" | "deferred", "code": int, "reply": str}
    recipient_results: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # A resend of a sent mail is a new row pointing at the original.
    resend_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="SET NULL")
    )

    company: Mapped[Company | None] = relationship()
    user: Mapped[User | None] = relationship()
    attempts_made: Mapped[list["OutboxAttempt"]] = relationship(
        order_by="OutboxAttempt.id", cascade="all, delete-orphan", passive_deletes=True
    )


class OutboxAttempt(db.Model):
    """One delivery attempt of a mail: when, to which server, and what it answered."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    server: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16))
    reply: Mapped[str | None] = mapped_column(Text)


class DeliverySession(db.Model):
    """An SMTP session a worker holds to a lane: how the cap of sessions per destination holds."""

    __tablename__ = "delivery_sessions"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    lane: Mapped[str] = mapped_column(String(64), index=True)
    worker: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Renewed by the session's heartbeat; a session past it is dead and its place is free.
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class ApiKey(db.Model):
    """A company's key for the enqueue API; only its hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))  # shown to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)

    company: Mapped[Company] = relationship()


class IdempotencyRecord(db.Model):
    """The first result of an API request made with an Idempotency-Key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


DKIM_NEW = "new"  # generated, its record not yet seen in DNS
DKIM_PUBLISHED = "published"  # the DNS check found the record matching the key
DKIM_ACTIVE = "active"  # signs the mail of its domain
DKIM_RETIRED = "retired"  # replaced by a newer key; its record may stay published until removed
DKIM_STATES = (DKIM_NEW, DKIM_PUBLISHED, DKIM_ACTIVE, DKIM_RETIRED)


class DkimKey(db.Model):
    """A DKIM signing key of one scope (a company, or the global settings) for a sender domain."""

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("company_id", "domain", "selector"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(16), default="rsa")
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)  # the record's base64 p= value
    state: Mapped[str] = mapped_column(String(16), default=DKIM_NEW)
    dns_status: Mapped[str | None] = mapped_column(String(16))  # the last check's DKIM verdict
    dns_checked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    activated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    activated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp)
