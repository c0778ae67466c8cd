"""OAuth2 for SMTP: provider defaults, the authorization-code flow with PKCE, revocation."""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from flask import current_app
from requests.adapters import HTTPAdapter

from portal import crypto
from portal.exceptions import OAuthTokenError, PortalError
from portal.extensions import db
from portal.models import (
    AUTH_GOOGLE,
    AUTH_MICROSOFT,
    SECURITY_STARTTLS,
    MailConfig,
    OAuthGrant,
    utcnow,
)
from portal.settings import resolution
from portal.settings.resolution import N_
from portal.wire import egress
from portal.wire.config import make_tls_context

HTTPS_PORTS = frozenset({443})
MAX_HTTP_SECONDS = 30.0  # a token endpoint slower than this is down, whatever the SMTP timeout
FALLBACK_LIFETIME_SECONDS = 300  # when a token response has no expires_in
# Token endpoint errors only an admin can fix; anything else is worth retrying later.
ADMIN_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"}
)


@dataclass(frozen=True)
class Provider:
    """What choosing a provider fills in; the admin may still edit every value."""

    host: str
    port: int
    security: str
    authorize_url: str
    token_url: str
    revoke_url: str
    scopes: str
    extra: tuple[tuple[str, str], ...] = ()  # extra authorization request parameters


MICROSOFT_BASE = "https://login.microsoftonline.com/common/oauth2/v2.0"
PROVIDERS = {
    AUTH_GOOGLE: Provider(
        "smtp.gmail.com",
        587,
        SECURITY_STARTTLS,
        "https://accounts.google.com/o/oauth2/auth",
        "https://oauth2.googleapis.com/token",
        "https://oauth2.googleapis.com/revoke",
        "https://mail.google.com/",
        # Without both, Google gives no refresh token after the first consent.
        (("access_type", "offline"), ("prompt", "consent")),
    ),
    AUTH_MICROSOFT: Provider(
        "smtp.office365.com",
        587,
        SECURITY_STARTTLS,
        f"{MICROSOFT_BASE}/authorize",
        f"{MICROSOFT_BASE}/token",
        "",  # Microsoft offers no token revocation endpoint
        "https://outlook.office.com/SMTP.Send offline_access",
    ),
}


class OAuthFlowError(PortalError):
    """The authorization could not be completed; the message is safe to show the admin.

    `text` is the English message with %(name)s placeholders that `values` fill: a screen
    translates `text`, str() is the English sentence.
    """

    def __init__(self, text: str, **values):
        super().__init__(text % values if values else text)
        self.text, self.values = text, values


class EndpointRefusedError(OAuthTokenError):
    """An endpoint is not HTTPS or the egress guard refuses its host; `text`/`values` as above."""

    def __init__(self, text: str, **values):
        super().__init__(text % values)
        self.text, self.values = text, values


class _VerifiedTls(HTTPAdapter):
    """HTTPS trusting the system store plus MAIL_CA_FILE, like the SMTP client."""

    def __init__(self, ca_file: str | None):
        self._context = make_tls_context(ca_file)
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


def check_url(url: str) -> None:
    """Refuse an endpoint that is not HTTPS or whose host the egress guard refuses."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise EndpointRefusedError(
            N_("The endpoint %(url)s is not an https:// URL."), url=repr(url)
        )
    try:
        egress.resolve_checked(
            parts.hostname, parts.port or 443, resolution.egress_policy(), base_ports=HTTPS_PORTS
        )
    except egress.EgressError as exc:
        raise EndpointRefusedError(
            N_("The endpoint %(host)s is refused: %(reason)s"),
            host=parts.hostname,
            reason=exc.message,
        ) from exc


def _session(config: MailConfig, redirect_uri: str | None = None) -> OAuth2Session:
    """An authlib client for the configuration's provider (client secret decrypted here only)."""
    secret = config.oauth_client_secret_encrypted
    session = OAuth2Session(
        client_id=config.oauth_client_id,
        client_secret=crypto.decrypt(secret) if secret else None,
        scope=config.oauth_scopes,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
        code_challenge_method="S256",
    )
    adapter = _VerifiedTls(current_app.config.get("MAIL_CA_FILE"))
    session.mount("https://", adapter)
    session.trust_env = False  # no proxy or netrc from the environment sees the secret
    return session


def client_for(
    config: MailConfig, url: str, redirect_uri: str | None = None
) -> tuple[OAuth2Session, dict]:
    """A client for one of the provider's endpoints, checked by the egress guard, and the
    options for its request: bounded time, no redirects (a redirect could leave the guard).

    OAuthTokenError when the endpoint is refused.
    """
    check_url(url)
    seconds = min(float(config.timeout_seconds), MAX_HTTP_SECONDS)
    return _session(config, redirect_uri), {"timeout": seconds, "allow_redirects": False}


def authorization_url(config: MailConfig, redirect_uri: str) -> tuple[str, str, str]:
    """(url, state, code_verifier) for sending the admin to the provider's consent page."""
    state = generate_token(32)
    verifier = generate_token(64)
    extra = dict(PROVIDERS[config.auth_method].extra) if config.auth_method in PROVIDERS else {}
    with _session(config, redirect_uri) as session:
        url, _ = session.create_authorization_url(
            config.oauth_authorize_url, state=state, code_verifier=verifier, **extra
        )
    return url, state, verifier


def exchange_code(config: MailConfig, code: str, verifier: str, redirect_uri: str) -> OAuthGrant:
    """Trade the callback's code for tokens and store the grant (caller commits)."""
    url = config.oauth_token_url or ""
    session, options = client_for(config, url, redirect_uri)
    try:
        with session:
            token = session.fetch_token(
                url, grant_type="authorization_code", code=code, code_verifier=verifier, **options
            )
    except OAuthError as exc:
        raise OAuthFlowError(
            N_("The provider refused the authorization: %(error)s."), error=exc.error
        ) from exc
    except (requests.RequestException, ValueError) as exc:
        raise OAuthFlowError(
            N_("The token endpoint could not be reached: %(reason)s"), reason=reason(exc)
        ) from exc
    if not token.get("refresh_token"):
        raise OAuthFlowError(
            N_(
                "The provider gave no refresh token, so mail could only be sent for an hour. "
                "Google gives one on a consent prompt with offline access; Microsoft with the "
                "offline_access scope."
            )
        )
    grant = config.grant or OAuthGrant(mail_config=config)
    grant.refresh_token_encrypted = crypto.encrypt(token["refresh_token"])
    grant.access_token_encrypted = crypto.encrypt(token["access_token"])
    grant.access_expires_at = expiry(token)
    grant.connected_as = config.username or ""
    grant.connected_at = utcnow()
    grant.reauth_needed, grant.problem = False, None
    grant.version = (grant.version or 0) + 1
    db.session.add(grant)
    return grant


def forget(config: MailConfig) -> str | None:
    """Delete the grant (caller commits); return its encrypted refresh token for revocation."""
    grant = config.grant
    if grant is None:
        return None
    db.session.delete(grant)
    config.grant = None
    return grant.refresh_token_encrypted


def revoke_remote(config: MailConfig, refresh_encrypted: str | None) -> OAuthFlowError | None:
    """Ask the provider to revoke a refresh token, when it has an endpoint for that.

    Returns a warning when the provider could not be told; the local grant is gone anyway.
    """
    if not (config.oauth_revoke_url and refresh_encrypted):
        return None
    try:
        session, options = client_for(config, config.oauth_revoke_url)
        with session:
            response = session.revoke_token(
                config.oauth_revoke_url,
                token=crypto.decrypt(refresh_encrypted),
                token_type_hint="refresh_token",  # noqa: S106 - a hint name
                **options,
            )
    except EndpointRefusedError as exc:
        return OAuthFlowError(exc.text, **exc.values)
    except (requests.RequestException, ValueError) as exc:
        return OAuthFlowError(reason(exc))
    if response.status_code != 200:
        return OAuthFlowError(N_("it answered HTTP %(status)s."), status=response.status_code)
    return None


def expiry(token: dict):
    """When an access token stops working, by the response's expires_in."""
    seconds = token.get("expires_in")
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        seconds = FALLBACK_LIFETIME_SECONDS
    return utcnow() + timedelta(seconds=seconds)


def reason(exc: Exception) -> str:
    """A short reason without URLs' query strings or bodies (they may carry tokens)."""
    if isinstance(exc, requests.Timeout):
        return N_("no answer in time.")
    if isinstance(exc, requests.exceptions.SSLError):
        return N_("the endpoint's TLS certificate was not accepted.")
    if isinstance(exc, requests.ConnectionError):
        return N_("connection failed.")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}."
    return type(exc).__name__
