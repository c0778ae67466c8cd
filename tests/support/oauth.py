"""The global mailbox connected through the test OAuth2 provider, and the grant that leaves."""

from urllib.parse import urlsplit

import requests
from sqlalchemy import select, update

from portal import crypto
from portal.extensions import db
from portal.models import OAuthGrant, utcnow
from support.forms import VALID
from support.oauth_server import MAILBOX

GLOBAL_AUTHORIZE = "/settings/mail/oauth/authorize"


def oauth_form(provider, smtp_port: int, **overrides) -> dict:
    """The global form as an admin fills it for an OAuth2 provider of their own."""
    data = {
        **VALID,
        "host": "127.0.0.1",
        "port": str(smtp_port),
        "security": "starttls",
        "timeout_seconds": "10",
        "auth_method": "oauth2",
        "username": MAILBOX,
        "oauth_client_id": provider.client_id,
        "oauth_client_secret": provider.client_secret,
        "oauth_authorize_url": provider.authorize_url,
        "oauth_token_url": provider.token_url,
        "oauth_revoke_url": provider.revoke_url,
        "oauth_scopes": "mail.send offline_access",
        # Both servers listen on loopback: the superuser allows them like internal relays.
        "egress_allowlist": "127.0.0.1/32",
        "egress_extra_ports": f"{smtp_port},{urlsplit(provider.base_url).port}",
        **overrides,
    }
    data.pop("password")
    return data


def consent(browser, provider, authorize_url: str = GLOBAL_AUTHORIZE, allow: bool = True):
    """Click Authorize, then Allow at the provider; return the portal's callback response."""
    started = browser.post(authorize_url, {}, htmx=True)
    assert started.status_code == 204, started.text
    at_provider = started.headers["HX-Redirect"]
    page = requests.get(at_provider, verify=provider.ca, timeout=5)
    assert f"send mail as {MAILBOX}" in page.text
    answer = requests.post(
        at_provider,
        data={"confirm": "yes" if allow else "no"},
        verify=provider.ca,
        allow_redirects=False,
        timeout=5,
    )
    back = urlsplit(answer.headers["Location"])
    return browser.get(f"{back.path}?{back.query}")


def grant() -> OAuthGrant:
    db.session.expire_all()
    return db.session.scalar(select(OAuthGrant))


def stored_refresh_token() -> str:
    return crypto.decrypt(grant().refresh_token_encrypted)


def expire_cached_token() -> None:
    """Mark the cached access token expired, so the next use refreshes it; commits."""
    db.session.execute(update(OAuthGrant).values(access_expires_at=utcnow()))
    db.session.commit()
