"""From effective settings to what the SMTP client needs: the egress policy and its config."""

from functools import partial

from flask import current_app

from portal import crypto, tokens
from portal.egress import EgressPolicy
from portal.settings import EffectiveSettings, global_config
from portal.smtp import SmtpConfig


def egress_policy() -> EgressPolicy:
    """The superuser's allowlist of internal relays and extra ports (global settings)."""
    config = global_config()
    if config is None:
        return EgressPolicy()
    return EgressPolicy.parse(config.egress_allowlist, config.egress_extra_ports)


def client_config(
    settings: EffectiveSettings, password: str | None = None, address: str | None = None
) -> SmtpConfig:
    """The SMTP client's settings; `password` None means the stored one (decrypted only here).

    With OAuth2 the client asks the stored grant of the configuration in force for tokens.
    """
    token_source = None
    if settings.uses_oauth:
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
        connect_address=address,
        token_source=token_source,
    )
