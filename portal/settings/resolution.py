"""The one place that decides which mail settings are in force for a company."""

import hashlib
import os
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    DEFAULT_TIMEOUT_SECONDS,
    SECURITY_CHOICES,
    Company,
    MailConfig,
    oauth_in_use,
)
from portal.text import parse_domains
from portal.wire import egress
from portal.wire.egress import EgressPolicy
from portal.wire.texts import N_

# The messages marked N_ are also stored and logged by the worker, so they stay English here; a
# screen translates them where it shows them (gettext of the same text).


SOURCE_COMPANY = "company"
SOURCE_GLOBAL = "global"
SOURCE_DEFAULT = "default"

DEFAULT_PORT = 25
DEFAULT_MAX_SESSIONS = 2  # concurrent SMTP sessions per destination, as Postfix's default
MAX_MAX_SESSIONS = 20
MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 180
MSG_CLEAR_AUTH = N_(
    "With Security “None” the password would cross the network in clear: choose STARTTLS or "
    "SSL/TLS, or have the superuser list this server under Network (internal relays)."
)
USUAL_PORTS = MappingProxyType({"none": 25, "starttls": 587, "ssl": 465})

# Declared once: the value used when neither the company nor the global configuration sets one.
DEFAULTS = MappingProxyType(
    {
        "host": None,
        "port": DEFAULT_PORT,
        "security": "none",
        "auth_enabled": False,
        "username": None,
        "password_encrypted": None,
        "auth_method": "password",
        "oauth_client_id": None,
        "oauth_client_secret_encrypted": None,
        "oauth_authorize_url": None,
        "oauth_token_url": None,
        "oauth_revoke_url": None,
        "oauth_scopes": None,
        "sender_address": None,
        "sender_name": None,
        "group_sends": False,
        "max_sessions": DEFAULT_MAX_SESSIONS,
        "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
        "reply_to": None,
        "footer_html": None,
        "footer_text": None,
        "ca_bundle": None,
        "default_sender_enabled": False,
        "all_use_default_sender": False,
        "egress_allowlist": None,
        "egress_extra_ports": None,
        "retention_days": 30,
        "internal_domains": None,
    }
)
# A company sets each group for itself ("Override") or follows the global settings in it.
GROUPS = MappingProxyType(
    {
        "server": ("host", "port", "security", "timeout_seconds", "max_sessions", "ca_bundle"),
        "auth": (
            "auth_enabled",
            "username",
            "password_encrypted",
            "auth_method",
            "oauth_client_id",
            "oauth_client_secret_encrypted",
            "oauth_authorize_url",
            "oauth_token_url",
            "oauth_revoke_url",
            "oauth_scopes",
        ),
        "sender": ("sender_address", "sender_name", "reply_to"),
        "delivery": ("group_sends", "footer_html", "footer_text"),
    }
)
# What a company may set for itself: every field of every group.
COMPANY_FIELDS = tuple(name for names in GROUPS.values() for name in names)
GLOBAL_ONLY_FIELDS = (
    "default_sender_enabled",
    "all_use_default_sender",
    "egress_allowlist",
    "egress_extra_ports",
    "retention_days",
    "internal_domains",
)
# Optional fields a company leaves empty to keep the global value.
INHERIT_WHEN_EMPTY = frozenset({"reply_to", "footer_html", "footer_text"})
GROUP_OF = MappingProxyType({name: group for group, names in GROUPS.items() for name in names})


@dataclass(frozen=True)
class EffectiveSettings:
    """Immutable snapshot of the settings in force, with the source of every value."""

    company_id: int | None
    host: str | None
    port: int
    security: str
    auth_enabled: bool
    username: str | None
    password_encrypted: str | None = field(repr=False)
    auth_method: str
    oauth_client_id: str | None
    oauth_client_secret_encrypted: str | None = field(repr=False)
    oauth_authorize_url: str | None
    oauth_token_url: str | None
    oauth_revoke_url: str | None
    oauth_scopes: str | None
    sender_address: str | None
    sender_name: str | None
    group_sends: bool
    max_sessions: int
    timeout_seconds: int
    reply_to: str | None
    footer_html: str | None
    footer_text: str | None
    ca_bundle: str | None = field(repr=False)  # PEM: the internal CAs its server may chain to
    default_sender_enabled: bool
    all_use_default_sender: bool
    egress_allowlist: str | None
    egress_extra_ports: str | None
    retention_days: int
    internal_domains: str | None
    sources: MappingProxyType = field(compare=False)
    # The configuration row whose authentication is in force (its OAuth2 grant is used).
    auth_config_id: int | None = None
    # The groups the company sets for itself (empty: it follows the global settings in all).
    overrides: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def uses_oauth(self) -> bool:
        return oauth_in_use(self.auth_enabled, self.auth_method)

    def source(self, name: str) -> str:
        return self.sources[name]

    @property
    def internal_domain_names(self) -> tuple[str, ...]:
        """The mail domains accepted although special-use (empresa.local)."""
        return domain_names(self.internal_domains)


def _is_set(value: Any) -> bool:
    return value is not None and value != ""


def global_config() -> MailConfig | None:
    """The global configuration row, if one has been saved or seeded."""
    return db.session.scalar(select(MailConfig).where(MailConfig.company_id.is_(None)))


def egress_policy() -> EgressPolicy:
    """The superuser's allowlist of internal relays and extra ports (global settings)."""
    config = global_config()
    if config is None:
        return EgressPolicy()
    return EgressPolicy.parse(config.egress_allowlist, config.egress_extra_ports)


def domain_names(raw: str | None) -> tuple[str, ...]:
    """The saved list of internal mail domains; an entry that no longer parses counts for none."""
    try:
        return parse_domains(raw)
    except ValueError:
        return ()


def internal_domains() -> tuple[str, ...]:
    """The superuser's internal mail domains (global settings): addresses there are accepted."""
    config = global_config()
    return domain_names(config.internal_domains) if config is not None else ()


def clear_auth_problem(
    host: str | None,
    security: str,
    auth_enabled: bool,
    auth_method: str,
    policy: EgressPolicy,
    address: str | None = None,
) -> str | None:
    """Why these settings would send a password in clear, or None.

    Password AUTH without TLS is refused unless the superuser listed the server as an internal
    relay: on any other network the password could be read on the way.
    """
    if not auth_enabled or oauth_in_use(auth_enabled, auth_method) or security != "none":
        return None
    if not host:
        return MSG_CLEAR_AUTH
    addresses = [address] if address else _addresses(host, policy)
    if policy.lists(host) or any(policy.lists(host, a) for a in addresses):
        return None
    return MSG_CLEAR_AUTH


def _addresses(host: str, policy: EgressPolicy) -> list[str]:
    """Where a host name points, when a listed network could hold it (a form, before connecting)."""
    if not policy.allowed_networks:
        return []
    try:
        return egress.system_resolver(host, 25)
    except OSError:
        return []  # no address: nothing listed can vouch for it


def resolve(company: Company | None) -> EffectiveSettings:
    """Return the effective settings for a company (None: the global settings alone)."""
    own = company.mail_config if company is not None and company.use_own_mail_settings else None
    return merge(company.id if company is not None else None, global_config(), own)


def overridden(own: MailConfig | None) -> frozenset[str]:
    """The groups a company's row, when in use, sets for itself.

    A company's server always comes with the company's own authentication: credentials belong
    to a destination, so the global password or token never goes to a host a company chose.
    """
    if own is None:
        return frozenset()
    # A row not yet flushed has None: its column default, every group, as before groups existed.
    groups = {group for group in GROUPS if getattr(own, f"override_{group}") is not False}
    if "server" in groups:
        groups.add("auth")
    return frozenset(groups)


def merge(
    company_id: int | None, glob: MailConfig | None, own: MailConfig | None
) -> EffectiveSettings:
    """The settings in force given the global row and the company's own row, when it is in use.

    Field by field: a company's value applies when the company overrides the field's group.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    groups = overridden(own)
    for name, default in DEFAULTS.items():
        if own is not None and name in COMPANY_FIELDS and GROUP_OF[name] in groups:
            value = getattr(own, name)
            if value is None and default is not None:
                # A row saved before the column existed (max_sessions): the company's form shows
                # the default, so that is in force, never None (a cap of NULL opens no session).
                values[name], sources[name] = default, SOURCE_DEFAULT
                continue
            if name not in INHERIT_WHEN_EMPTY or _is_set(value):
                values[name], sources[name] = value, SOURCE_COMPANY
                continue
        value = getattr(glob, name) if glob is not None else None
        if _is_set(value):
            values[name], sources[name] = value, SOURCE_GLOBAL
        else:
            values[name], sources[name] = default, SOURCE_DEFAULT
    auth_row = own if "auth" in groups else glob
    return EffectiveSettings(
        company_id=company_id,
        sources=MappingProxyType(sources),
        auth_config_id=auth_row.id if auth_row is not None else None,
        overrides=groups,
        **values,
    )


def resolve_for_test(
    company: Company | None, values: dict[str, Any], auth_config_id: int | None
) -> EffectiveSettings:
    """The settings a connection test uses: those in force, with the form's values over them.

    No stored password comes along: the test is given the typed or the decrypted one.
    """
    typed = {name: value for name, value in values.items() if name in DEFAULTS}
    return replace(
        resolve(company), **typed, password_encrypted=None, auth_config_id=auth_config_id
    )


def session_key(settings: EffectiveSettings) -> str:
    """Mails whose settings share this key can go out over one SMTP session."""
    parts = (
        settings.host,
        settings.port,
        settings.security,
        settings.username if settings.auth_enabled else None,
        settings.password_encrypted if settings.auth_enabled else None,
        settings.timeout_seconds,
        settings.ca_bundle,  # another trust is another connection
        # An OAuth2 mailbox's tokens belong to the configuration row that holds the grant.
        (settings.auth_method, settings.auth_config_id) if settings.uses_oauth else None,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def env_seed() -> dict[str, Any]:
    """Global settings given by MAIL_* environment variables, as an installer would set them."""
    env = os.environ
    seed: dict[str, Any] = {}
    if env.get("MAIL_HOST"):
        seed["host"] = env["MAIL_HOST"].strip().lower()
    security = env.get("MAIL_SECURITY", "").strip().lower().replace("-", "").replace("/", "")
    security = {"tls": "ssl", "ssltls": "ssl"}.get(security, security)
    if security in SECURITY_CHOICES:
        seed["security"] = security
    if env.get("MAIL_PORT", "").isdigit():
        seed["port"] = int(env["MAIL_PORT"])
    elif "security" in seed:
        seed["port"] = USUAL_PORTS[seed["security"]]
    if env.get("MAIL_USERNAME"):
        seed["auth_enabled"] = True
        seed["username"] = env["MAIL_USERNAME"]
    if env.get("MAIL_FROM"):
        seed["default_sender_enabled"] = True
        seed["sender_address"] = env["MAIL_FROM"]
    return seed
