"""The mail settings pages: the forms as an admin fills them, and what a save or a test left."""

import re

from portal.extensions import db
from portal.models import MailConfig
from portal.settings.resolution import global_config

GLOBAL_URL = "/settings/mail"
VALID = {
    "host": "smtp.example.com",
    "port": "587",
    "security": "starttls",
    "auth_enabled": "y",
    "username": "mailer",
    "password": "first-password",
    "default_sender_enabled": "y",
    "sender_address": "noreply@example.com",
    "sender_name": "Example",
    "timeout_seconds": "60",
    "max_sessions": "2",
    "retention_days": "30",
}
STEP = re.compile(r'<li class="(ok|failed)" data-step="([a-z]+)">')


def company_url(company) -> str:
    return f"/companies/{company.id}/email"


def company_data(**overrides) -> dict:
    """A company's Email tab with its own settings switched on, as its admin fills it."""
    data = {
        "use_own": "y",
        "host": "smtp.acme.example.com",
        "port": "465",
        "security": "ssl",
        "sender_address": "mail@acme.example.com",
        "timeout_seconds": "30",
        "max_sessions": "2",
    }
    return {**data, **overrides}


def saved_global() -> MailConfig | None:
    """The global settings row as the database holds it now."""
    db.session.expire_all()
    return global_config()


def at_field(page: str, name: str) -> str:
    """The markup of one form field on a page: its label, input, hint and messages."""
    found = re.search(rf'id="field-{name}">(.*?)</div>', page, re.S)
    assert found, f"no field {name} on the page"
    return found.group(1)


def steps(page: str) -> list[tuple[str, bool]]:
    """(data-step, ok?) of each step a connection test shows, in order."""
    return [(name, cls == "ok") for cls, name in STEP.findall(page)]
