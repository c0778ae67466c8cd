"""Configuration read from the environment, with a test subclass."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_PATH = ROOT / "instance"


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
    AUDIT_ROWS_SHOWN = 10
