"""Saving mail configurations: field values, the write-only password, the footer."""

import os
from typing import Any

from portal import crypto
from portal.extensions import db
from portal.models import Company, MailConfig, oauth_in_use
from portal.settings.resolution import (
    COMPANY_FIELDS,
    DEFAULTS,
    GLOBAL_ONLY_FIELDS,
    GROUP_OF,
    GROUPS,
    N_,
    env_seed,
    global_config,
)
from portal.text import sanitize_footer

# Changing any of these means a new server: a saved password is not sent there.
DESTINATION_FIELDS = ("host", "port", "security", "username")
PASSWORD_CHANGED = "changed"
PASSWORD_REMOVED = "removed"
MSG_PASSWORD_NEEDED = N_("Enter the password for this server.")
MSG_PASSWORD_AGAIN = N_(
    "Host, Port, Security or User changed: enter the password again. "
    "A saved password is never sent to another server."
)
MSG_REMOVE_WITH_AUTH = N_("Authentication needs a password: enter one or turn Authentication off.")
# A saved client secret is only ever sent to the token endpoint it was entered for.
SECRET_FIELDS = ("oauth_client_id", "oauth_token_url")
MSG_SECRET_NEEDED = N_("Enter the client secret the provider gave your app.")
MSG_SECRET_AGAIN = N_(
    "Client ID or token endpoint changed: enter the client secret again. "
    "A saved secret is never sent to another endpoint."
)
# The access token goes to this host for this mailbox: a change needs a new authorization.
GRANT_FIELDS = ("host", "username", "auth_method", *SECRET_FIELDS, "oauth_scopes")
# Not typed into a field of the same name: derived, write-only, or uploaded (the CA bundle).
NOT_STORED = ("password_encrypted", "footer_text", "oauth_client_secret_encrypted", "ca_bundle")


def uses_oauth(values: dict[str, Any]) -> bool:
    return oauth_in_use(values["auth_enabled"], values["auth_method"])


def form_values(form) -> dict[str, Any]:
    """The stored values a submitted mail form asks for (a company's: its groups' only)."""
    groups: frozenset[str] | None = getattr(form, "groups", None)
    values: dict[str, Any] = {}
    for name in COMPANY_FIELDS + GLOBAL_ONLY_FIELDS:
        if name in NOT_STORED or not hasattr(form, name):
            continue
        if groups is not None and GROUP_OF.get(name) not in groups:
            continue
        value = getattr(form, name).data
        values[name] = value.strip() if isinstance(value, str) else value
        if values[name] == "":
            values[name] = None
    if "auth_enabled" in values:
        if not values["auth_enabled"]:
            values["username"] = None
        if not uses_oauth(values):
            for name in [n for n in values if n.startswith("oauth_")]:
                values[name] = None
    if not values.get("default_sender_enabled", True):
        values["all_use_default_sender"] = False
    if "footer_html" in values:
        values["footer_html"], values["footer_text"] = sanitize_footer(values["footer_html"])
    if groups is not None:
        values.update({f"override_{group}": group in groups for group in GROUPS})
    return values


def prefill(config: MailConfig | None, *, with_global_only: bool) -> dict[str, Any]:
    """Form data drawn from a stored configuration (never the password)."""
    names = [n for n in COMPANY_FIELDS if n not in NOT_STORED]
    if with_global_only:
        names += list(GLOBAL_ONLY_FIELDS)
    if config is None:
        return {}
    # An unset column leaves the form field at its declared default.
    return {name: getattr(config, name) for name in names if getattr(config, name) is not None}


def ca_choice(config: MailConfig | None, typed: str | None, remove: bool) -> str | None:
    """The CA bundle to store: the one pasted or uploaded, none on Remove, else the saved one."""
    if typed:
        return typed + "\n"
    if remove or config is None:
        return None
    return config.ca_bundle


def password_problem(
    config: MailConfig | None, values: dict[str, Any], new_password: str, remove: bool
) -> str | None:
    """Why the submitted password choice cannot be saved, or None (no password asked for)."""
    if "auth_enabled" not in values:
        return None  # authentication in force is the global one, which this form does not set
    if not values["auth_enabled"] or uses_oauth(values) or new_password:
        return None
    if remove:
        return MSG_REMOVE_WITH_AUTH
    if config is None or not config.has_password:
        return MSG_PASSWORD_NEEDED
    if any(name in values and getattr(config, name) != values[name] for name in DESTINATION_FIELDS):
        return MSG_PASSWORD_AGAIN
    if "override_server" in values and bool(config.override_server) != values["override_server"]:
        return MSG_PASSWORD_AGAIN
    return None


def secret_problem(
    config: MailConfig | None, values: dict[str, Any], new_secret: str
) -> str | None:
    """Why the OAuth2 client secret choice cannot be saved, or None."""
    if "auth_enabled" not in values or not uses_oauth(values) or new_secret:
        return None
    if config is None or not config.has_client_secret:
        return MSG_SECRET_NEEDED
    if any(getattr(config, name) != values[name] for name in SECRET_FIELDS):
        return MSG_SECRET_AGAIN
    return None


def grant_moved(config: MailConfig | None, values: dict[str, Any]) -> bool:
    """Whether these values would send the saved grant's tokens elsewhere (or not use it)."""
    if config is None or config.grant is None:
        return False
    if "auth_enabled" not in values or not uses_oauth(values):
        return True  # not in use (a company following the global authentication): forgotten
    if "override_server" in values and bool(config.override_server) != values["override_server"]:
        return True  # the tokens would go to another server
    return any(name in values and getattr(config, name) != values[name] for name in GRANT_FIELDS)


def apply(
    config: MailConfig, values: dict[str, Any], new_password: str, new_secret: str = ""
) -> dict[str, Any]:
    """Write values and the secret choices onto a row; return the changes for the audit."""
    changes: dict[str, Any] = {}
    if grant_moved(config, values):
        db.session.delete(config.grant)
        config.grant = None
        changes["oauth"] = "disconnected: the server, mailbox or provider changed"
    for name, new in values.items():
        old = getattr(config, name)
        if old != new:
            changes[name] = {"old": old, "new": new}
            setattr(config, name, new)
    changes.pop("footer_text", None)
    if new_password:
        config.password_encrypted = crypto.encrypt(new_password)
        changes["password"] = PASSWORD_CHANGED
    elif not _password_in_use(values) and config.has_password:
        # Without password authentication a stored password has no use; do not keep it.
        config.password_encrypted = None
        changes["password"] = PASSWORD_REMOVED
    if new_secret:
        config.oauth_client_secret_encrypted = crypto.encrypt(new_secret)
        changes["client_secret"] = PASSWORD_CHANGED
    elif not _oauth_in_use(values) and config.has_client_secret:
        config.oauth_client_secret_encrypted = None
        changes["client_secret"] = PASSWORD_REMOVED
    return changes


def _password_in_use(values: dict[str, Any]) -> bool:
    return "auth_enabled" in values and values["auth_enabled"] and not uses_oauth(values)


def _oauth_in_use(values: dict[str, Any]) -> bool:
    return "auth_enabled" in values and uses_oauth(values)


def company_config(company: Company) -> MailConfig:
    """The company's own configuration row, created on first use."""
    if company.mail_config is None:
        # Start from the declared defaults so the first save audits only real choices.
        defaults = {k: v for k, v in DEFAULTS.items() if v is not None}
        # ... and from following the global settings in every group, as it did until now.
        follows = {f"override_{group}": False for group in GROUPS}
        company.mail_config = MailConfig(company_id=company.id, **defaults, **follows)
        db.session.add(company.mail_config)
    return company.mail_config


def ensure_global_config() -> MailConfig:
    """The global row, seeded from MAIL_* environment variables when none exists yet."""
    config = global_config()
    if config is None:
        seed = env_seed()
        config = MailConfig(company_id=None, **seed)

        if seed.get("auth_enabled") and os.environ.get("MAIL_PASSWORD"):
            config.password_encrypted = crypto.encrypt(os.environ["MAIL_PASSWORD"])
        db.session.add(config)
        db.session.flush()
    return config
