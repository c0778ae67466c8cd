"""What one SMTP connection needs: the server, its security, credentials and the TLS trust."""

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from portal.wire.errors import SmtpTlsError

SECURITY_MODES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect; `password` is plaintext and never shown."""

    host: str
    port: int
    security: str  # "none" | "starttls" | "ssl"
    timeout: float  # seconds, per socket operation
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    # PEM certificates this configuration's server may chain to, besides the system's and
    # `ca_file`: an internal CA. Long, not secret: left out of repr to keep log lines short.
    ca_data: str | None = field(default=None, repr=False)
    local_hostname: str | None = None
    connect_address: str | None = None  # pinned IP; TLS still checks `host`
    # Seconds for the TCP connect, TLS on connect and the greeting, when shorter than
    # `timeout` (a connection test); None: `timeout`, as real delivery uses it.
    connect_timeout: float | None = None
    # XOAUTH2 instead of a password: called with None for a token, then with a token the
    # server refused for a fresh one. Whatever it raises reaches the caller unchanged.
    token_source: Callable[[str | None], str] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {SECURITY_MODES}")
        if not 0 < self.port < 65536 or self.timeout <= 0:
            raise ValueError("port must be 1..65535 and timeout positive")


def make_tls_context(ca_file: str | None = None, ca_data: str | None = None) -> ssl.SSLContext:
    """A context that verifies certificate and host name, trusting `ca_file` and `ca_data`
    (PEM text) besides the system.

    Shared between sessions: loading the system's CA store costs more than a whole SMTP
    session on loopback. A changed CA file (new mtime) or other PEM text gets a new context.
    """
    try:
        stamp = os.stat(ca_file).st_mtime_ns if ca_file else None
    except OSError as exc:
        raise SmtpTlsError(f"cannot load CA file: {exc}", step="tls") from exc
    return _tls_context(ca_file, stamp, ca_data or None)


@lru_cache(maxsize=16)
def _tls_context(ca_file: str | None, _stamp: int | None, ca_data: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ValueError) as exc:
            raise SmtpTlsError(f"cannot load CA file: {exc}", step="tls") from exc
    if ca_data:
        try:
            context.load_verify_locations(cadata=ca_data)
        except (ssl.SSLError, ValueError) as exc:
            raise SmtpTlsError(f"cannot load the trusted certificates: {exc}", step="tls") from exc
    return context


def with_first_token(config: SmtpConfig) -> SmtpConfig:
    """Ask the token source now, so its errors come before any connection.

    The session's first login uses that token; a reconnect asks the source again.
    """
    source = config.token_source
    if source is None:
        return config
    first = [source(None)]

    def token(rejected: str | None) -> str:
        return first.pop() if rejected is None and first else source(rejected)

    return replace(config, token_source=token)
