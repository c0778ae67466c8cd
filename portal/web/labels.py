"""The words the screens show for stored values: settings fields, security modes, auth methods.

Lazy: each renders in the language of the request that shows it; str() one before storing it.
"""

from flask_babel import lazy_gettext as _l

from portal.models import AUTH_GOOGLE, AUTH_MICROSOFT, AUTH_OAUTH_OTHER, AUTH_PASSWORD

# The settings history names each changed field with these.
FIELD_LABELS = {
    "host": _l("Host"),
    "port": _l("Port"),
    "security": _l("Security"),
    "auth_enabled": _l("Authentication"),
    "username": _l("User"),
    "password": _l("Password"),
    "auth_method": _l("Authentication method"),
    "oauth_client_id": _l("Client ID"),
    "client_secret": _l("Client secret"),
    "oauth_authorize_url": _l("Authorization endpoint"),
    "oauth_token_url": _l("Token endpoint"),
    "oauth_revoke_url": _l("Revocation endpoint"),
    "oauth_scopes": _l("Scopes"),
    "oauth": _l("OAuth2 authorization"),
    "default_sender_enabled": _l("Default sender"),
    "sender_address": _l("Sender address"),
    "sender_name": _l("Sender name"),
    "all_use_default_sender": _l("All notifications use the default sender"),
    "group_sends": _l("Group sends every 2 s"),
    "timeout_seconds": _l("SMTP timeout"),
    "max_sessions": _l("Parallel connections"),
    "reply_to": _l("Reply-To"),
    "footer_html": _l("HTML footer"),
    "use_own_mail_settings": _l("Use company-specific mail settings"),
    "override_server": _l("Own server settings"),
    "override_auth": _l("Own authentication"),
    "override_sender": _l("Own sender settings"),
    "override_delivery": _l("Own delivery settings"),
    "egress_allowlist": _l("Allowed internal relays"),
    "egress_extra_ports": _l("Additional SMTP ports"),
    "retention_days": _l("Keep sent mail (days)"),
    "internal_domains": _l("Internal mail domains"),
    "ca_bundle": _l("Trusted CA certificates"),
    "server": _l("Server"),
    "result": _l("Result"),
    "name": _l("Name"),
    "default_language": _l("Default language"),
    "email": _l("Email"),
    "account": _l("Account"),
    "client": _l("Client address"),
    "paused": _l("Log-ins paused for"),
    "dkim": "DKIM",
    "dkim_key": _l("DKIM key"),
    "state": _l("State"),
    "retired": _l("Retired key"),
    "forced": _l("Activated without a matching DNS record"),
    "spf": "SPF",
    "dmarc": "DMARC",
    "recipient": _l("Recipient"),
    "mail": _l("Mail"),
}
SECURITY_NAMES = {"none": _l("None"), "starttls": "STARTTLS", "ssl": "SSL/TLS"}
AUTH_METHOD_NAMES = {
    AUTH_PASSWORD: _l("Password"),
    AUTH_GOOGLE: "OAuth2 – Google",
    AUTH_MICROSOFT: "OAuth2 – Microsoft 365",
    AUTH_OAUTH_OTHER: _l("OAuth2 – other provider"),
}

# Every audit action the portal records, as the history names it, and the kind it files under.
ACTIONS = {
    "mail_settings.update": (_l("Mail settings changed"), "settings"),
    "mail_settings.test": (_l("Connection tested"), "tests"),
    "mail_settings.test_mail": (_l("Test mail queued"), "tests"),
    "mail_settings.oauth": (_l("OAuth2 authorization"), "keys"),
    "apikey.create": (_l("API key created"), "keys"),
    "apikey.revoke": (_l("API key revoked"), "keys"),
    "dkim.generate": (_l("DKIM key generated"), "keys"),
    "dkim.check": (_l("DKIM DNS record checked"), "keys"),
    "dkim.activate": (_l("DKIM key activated"), "keys"),
    "dkim.remove": (_l("DKIM key removed"), "keys"),
    "company.create": (_l("Company created"), "accounts"),
    "company.rename": (_l("Company changed"), "accounts"),  # its name or default language
    "admin.assign": (_l("Admin added"), "accounts"),
    "admin.remove": (_l("Admin removed"), "accounts"),
    "login.failed": (_l("Log-in failed"), "accounts"),
}
ACTION_LABELS = {action: label for action, (label, _) in ACTIONS.items()}
# The history's filter by kind, in the order the filter lists them.
KIND_LABELS = {
    "settings": _l("Settings changes"),
    "tests": _l("Connection tests and test mails"),
    "keys": _l("Keys (API keys, DKIM, OAuth2)"),
    "accounts": _l("Companies and accounts"),
}


def actions_of(kind: str) -> list[str]:
    """The audit actions filed under one kind of the history's filter."""
    return [action for action, (_, filed) in ACTIONS.items() if filed == kind]
