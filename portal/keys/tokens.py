"""XOAUTH2 access tokens: cached until shortly before expiry, refreshed by one worker at a time."""

import time
from datetime import timedelta

import requests
from authlib.integrations.requests_client import OAuthError
from sqlalchemy import Row, or_, select, update

from portal import crypto, metrics
from portal.exceptions import OAuthTokenError, ReauthorizationNeededError
from portal.extensions import db
from portal.keys import oauth
from portal.models import MailConfig, OAuthGrant, as_utc, utcnow

EARLY_SECONDS = 60  # an access token this close to its expiry is refreshed first
LEASE_SECONDS = 60  # longer than one token request (MAX_HTTP_SECONDS)
WAIT_SECONDS = 45  # for another worker's refresh, then give up for now
POLL_SECONDS = 0.1
GRANTS = OAuthGrant.__table__
NOT_CONNECTED = "The mailbox is not connected: an admin must authorize it."


def access_token(config_id: int, rejected: str | None = None, fresh: bool = False) -> str:
    """A usable access token for the configuration; `rejected` is one the server just refused.

    `fresh` always asks the provider (Test connection checks the refresh token that way).
    One worker at a time asks the provider, under a lease on the grant row; the others wait
    and use its token. Writes go only over the version read, so no rotated token is lost.
    """
    grant = _current(config_id)
    if not fresh and _usable(grant, rejected):
        return crypto.decrypt(grant.access_token_encrypted)
    seen = grant.version
    waited_until = time.monotonic() + WAIT_SECONDS
    while (lease := _take_lease(config_id)) is None:
        if time.monotonic() > waited_until:
            raise OAuthTokenError("Token refresh failed: another refresh did not finish in time.")
        time.sleep(POLL_SECONDS)
        grant = _current(config_id)
        if grant.version != seen and _usable(grant, rejected):
            return crypto.decrypt(grant.access_token_encrypted)  # theirs is as fresh as ours
    try:
        grant = _current(config_id)
        if not fresh and _usable(grant, rejected):
            return crypto.decrypt(grant.access_token_encrypted)
        return _refresh(config_id, grant)
    finally:
        _end_lease(config_id, lease)


def _take_lease(config_id: int):
    """Hold the grant's refresh lease (its end time), or None while another worker has it."""
    now = utcnow()
    until = now + timedelta(seconds=LEASE_SECONDS)
    free = or_(GRANTS.c.refresh_lease_until.is_(None), GRANTS.c.refresh_lease_until < now)
    result = db.session.execute(
        update(GRANTS)
        .where(GRANTS.c.mail_config_id == config_id, free)
        .values(refresh_lease_until=until)
    )
    db.session.commit()
    return until if result.rowcount == 1 else None


def _end_lease(config_id: int, lease) -> None:
    db.session.execute(
        update(GRANTS)
        .where(GRANTS.c.mail_config_id == config_id, GRANTS.c.refresh_lease_until == lease)
        .values(refresh_lease_until=None)
    )
    db.session.commit()


def _current(config_id: int) -> Row:
    """The grant's row as stored now (a plain snapshot), or ReauthorizationNeededError."""
    grant = db.session.execute(select(GRANTS).where(GRANTS.c.mail_config_id == config_id)).first()
    db.session.commit()  # no transaction stays open while waiting or refreshing
    if grant is None or not grant.refresh_token_encrypted:
        raise ReauthorizationNeededError(NOT_CONNECTED, error=None)
    if grant.reauth_needed:
        raise ReauthorizationNeededError(_needs_reauth(grant.problem))
    return grant


def _usable(grant: Row, rejected: str | None) -> bool:
    if not grant.access_token_encrypted or grant.access_expires_at is None:
        return False
    if as_utc(grant.access_expires_at) - timedelta(seconds=EARLY_SECONDS) <= utcnow():
        return False
    return rejected is None or crypto.decrypt(grant.access_token_encrypted) != rejected


def _refresh(config_id: int, grant: Row) -> str:
    config = db.session.get(MailConfig, config_id)
    url = config.oauth_token_url or ""
    client, options = oauth.client_for(config, url)
    version, refresh = grant.version, crypto.decrypt(grant.refresh_token_encrypted)
    db.session.commit()  # the token request may take seconds: no transaction waits on it
    try:
        with client:
            token = client.refresh_token(url, refresh_token=refresh, **options)
    except OAuthError as exc:
        metrics.TOKEN_REFRESH_FAILURES.labels(reason="refused").inc()
        return _refused(config_id, version, exc)
    except (requests.RequestException, ValueError) as exc:
        metrics.TOKEN_REFRESH_FAILURES.labels(reason="error").inc()
        raise OAuthTokenError(f"Token refresh failed: {oauth.reason(exc)}") from exc
    values = {
        "access_token_encrypted": crypto.encrypt(token["access_token"]),
        "access_expires_at": oauth.expiry(token),
        "problem": None,
    }
    if token.get("refresh_token") and token["refresh_token"] != refresh:
        values["refresh_token_encrypted"] = crypto.encrypt(token["refresh_token"])
    if not _write(config_id, version, values):
        return _theirs(config_id)
    return token["access_token"]


def _refused(config_id: int, version: int, exc: OAuthError) -> str:
    """The token endpoint said no: flag the grant when only an admin can fix it."""
    error = exc.error or "error"
    if error not in oauth.ADMIN_ERRORS:
        raise OAuthTokenError(f"Token refresh failed: the provider answered {error}.", error)
    problem = f"The provider answered {error}" + (
        f": {exc.description}" if exc.description else "."
    )
    values = {"problem": problem[:500]}
    if error == "invalid_grant":
        values["reauth_needed"] = True
    if not _write(config_id, version, values):
        return _theirs(config_id)
    if error == "invalid_grant":
        raise ReauthorizationNeededError(_needs_reauth(problem))
    raise OAuthTokenError(
        f"Token refresh failed: {problem} Check the client ID and secret.", error, admin_action=True
    )


def _theirs(config_id: int) -> str:
    """Someone re-authorized or refreshed while we asked the provider: theirs is newer."""
    grant = _current(config_id)
    if _usable(grant, None):
        return crypto.decrypt(grant.access_token_encrypted)
    raise OAuthTokenError("The authorization changed while refreshing: try again.")


def _write(config_id: int, version: int, values: dict) -> bool:
    """Update the grant only if nobody changed it since `version` was read; commit at once."""
    result = db.session.execute(
        update(GRANTS)
        .where(GRANTS.c.mail_config_id == config_id, GRANTS.c.version == version)
        .values(version=version + 1, **values)
    )
    db.session.commit()
    return result.rowcount == 1


def _needs_reauth(problem: str | None) -> str:
    reason = f" ({problem})" if problem else ""
    return f"Re-authorization needed: the provider refused the saved authorization{reason}."
