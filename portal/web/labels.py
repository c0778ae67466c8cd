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
    "reply_to": "Reply-To",
    "footer_html": "HTML footer",
    "use_own_mail_settings": "Use company-specific mail settings",
    "egress_allowlist": "Allowed internal relays",
    "egress_extra_ports": "Additional SMTP ports",
    "retention_days": "Keep sent mail (days)",
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
}
SECURITY_NAMES = {"none": "None", "starttls": "STARTTLS", "ssl": "SSL/TLS"}
AUTH_METHOD_NAMES = {
    AUTH_PASSWORD: "Password",
    AUTH_GOOGLE: "OAuth2 – Google",
    AUTH_MICROSOFT: "OAuth2 – Microsoft 365",
    AUTH_OAUTH_OTHER: "OAuth2 – other provider",
}
