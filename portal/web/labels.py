"""The words the screens show for stored values: settings fields, security modes, auth methods."""

from portal.models import AUTH_GOOGLE, AUTH_MICROSOFT, AUTH_OAUTH_OTHER, AUTH_PASSWORD

# The settings history names each changed field with these.
FIELD_LABELS = {
    "host": "Host",
    "port": "Port",
    "security": "Security",
    "auth_enabled": "Authentication",
    "username": "User",
    "password": "Password",
    "auth_method": "Authentication method",
    "oauth_client_id": "Client ID",
    "client_secret": "Client secret",
    "oauth_authorize_url": "Authorization endpoint",
    "oauth_token_url": "Token endpoint",
    "oauth_revoke_url": "Revocation endpoint",
    "oauth_scopes": "Scopes",
    "oauth": "OAuth2 authorization",
    "default_sender_enabled": "Default sender",
    "sender_address": "Sender address",
    "sender_name": "Sender name",
    "all_use_default_sender": "All notifications use the default sender",
    "group_sends": "Group sends every 2 s",
    "timeout_seconds": "SMTP timeout",
    "max_sessions": "Parallel connections",
    "reply_to": "Reply-To",
    "footer_html": "HTML footer",
    "use_own_mail_settings": "Use company-specific mail settings",
    "override_server": "Own server settings",
    "override_auth": "Own authentication",
    "override_sender": "Own sender settings",
    "override_delivery": "Own delivery settings",
    "egress_allowlist": "Allowed internal relays",
    "egress_extra_ports": "Additional SMTP ports",
    "retention_days": "Keep sent mail (days)",
    "internal_domains": "Internal mail domains",
    "ca_bundle": "Trusted CA certificates",
    "server": "Server",
    "result": "Result",
    "name": "Name",
    "email": "Email",
    "account": "Account",
    "client": "Client address",
    "paused": "Log-ins paused for",
    "dkim": "DKIM",
    "dkim_key": "DKIM key",
    "state": "State",
    "retired": "Retired key",
    "forced": "Activated without a matching DNS record",
    "spf": "SPF",
    "dmarc": "DMARC",
    "recipient": "Recipient",
    "mail": "Mail",
}
SECURITY_NAMES = {"none": "None", "starttls": "STARTTLS", "ssl": "SSL/TLS"}
AUTH_METHOD_NAMES = {
    AUTH_PASSWORD: "Password",
    AUTH_GOOGLE: "OAuth2 – Google",
    AUTH_MICROSOFT: "OAuth2 – Microsoft 365",
    AUTH_OAUTH_OTHER: "OAuth2 – other provider",
}

# Every audit action the portal records, as the history names it, and the kind it files under.
ACTIONS = {
    "mail_settings.update": ("Mail settings changed", "settings"),
    "mail_settings.test": ("Connection tested", "tests"),
    "mail_settings.test_mail": ("Test mail queued", "tests"),
    "mail_settings.oauth": ("OAuth2 authorization", "keys"),
    "apikey.create": ("API key created", "keys"),
    "apikey.revoke": ("API key revoked", "keys"),
    "dkim.generate": ("DKIM key generated", "keys"),
    "dkim.check": ("DKIM DNS record checked", "keys"),
    "dkim.activate": ("DKIM key activated", "keys"),
    "dkim.remove": ("DKIM key removed", "keys"),
    "company.create": ("Company created", "accounts"),
    "company.rename": ("Company renamed", "accounts"),
    "admin.assign": ("Admin added", "accounts"),
    "admin.remove": ("Admin removed", "accounts"),
    "login.failed": ("Log-in failed", "accounts"),
}
ACTION_LABELS = {action: label for action, (label, _) in ACTIONS.items()}
# The history's filter by kind, in the order the filter lists them.
KIND_LABELS = {
    "settings": "Settings changes",
    "tests": "Connection tests and test mails",
    "keys": "Keys (API keys, DKIM, OAuth2)",
    "accounts": "Companies and accounts",
}


def actions_of(kind: str) -> list[str]:
    """The audit actions filed under one kind of the history's filter."""
    return [action for action, (_, filed) in ACTIONS.items() if filed == kind]
