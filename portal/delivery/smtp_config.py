"""From the settings in force to the SMTP client's config, its host checked by the egress guard."""

from functools import partial

from flask import current_app

from portal import crypto
from portal.settings.resolution import EffectiveSettings, clear_auth_problem, egress_policy
from portal.wire import egress
from portal.wire.config import SmtpConfig


def client_config(
    settings: EffectiveSettings, password: str | None = None, address: str | None = None
) -> SmtpConfig:
    """The SMTP client's settings; `password` None means the stored one (decrypted only here).

    With OAuth2 the client asks the stored grant of the configuration in force for tokens.
    """
    token_source = None
    if settings.uses_oauth:
        # Here, not at import: requests and Authlib would slow every worker's start.
        from portal.keys import tokens

        password, token_source = None, partial(tokens.access_token, settings.auth_config_id)
    elif password is None and settings.auth_enabled and settings.password_encrypted:
        password = crypto.decrypt(settings.password_encrypted)
    return SmtpConfig(
        host=settings.host or "",
        port=settings.port,
        security=settings.security,
        username=settings.username if settings.auth_enabled else None,
        password=password if settings.auth_enabled else None,
        timeout=float(settings.timeout_seconds),
        ca_file=current_app.config.get("MAIL_CA_FILE"),
        ca_data=settings.ca_bundle,
        connect_address=address,
        token_source=token_source,
    )


def smtp_config(settings: EffectiveSettings) -> SmtpConfig:
    """The client's settings, its host checked by the egress guard like a connection test.

    The client connects to the checked address. Raises EgressError for a refused destination,
    and for a password that would cross the network in clear (settings saved before that rule).
    """
    policy = egress_policy()
    address = egress.resolve_checked(settings.host or "", settings.port, policy)
    problem = clear_auth_problem(
        settings.host,
        settings.security,
        settings.auth_enabled,
        settings.auth_method,
        policy,
        address,
    )
    if problem:
        raise egress.EgressError("clear_auth", problem, coarse=problem)
    return client_config(settings, address=address)
