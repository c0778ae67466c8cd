"""Demo data: a superuser, two companies with one admin each, global mail settings."""

from collections.abc import Callable, Iterator

from sqlalchemy import select

from portal import accounts
from portal.extensions import db
from portal.models import Company, User
from portal.settings.saving import ensure_global_config

SUPERUSER_EMAIL = "wcmadmin@example.com"
COMPANIES = (("Acme Ltd", "admin@acme.example.com"), ("Globex Corp", "admin@globex.example.com"))
# The local mail catcher the demo starts listens here.
DEMO_MAIL_HOST = "127.0.0.1"
DEMO_MAIL_PORT = 1025


def _user(email: str, new_password: Callable[[], str], **fields) -> tuple[User, str | None]:
    user = accounts.find_by_email(email)
    if user is not None:
        return user, None
    password = new_password()
    user = User(email=email, **fields)
    accounts.set_password(user, password)
    db.session.add(user)
    return user, password


def seed(new_password: Callable[[], str]) -> Iterator[tuple[str, str]]:
    """Create what is missing; yield (email, password) for each account created now."""
    _, password = _user(SUPERUSER_EMAIL, new_password, name="wcmadmin", is_superuser=True)
    if password:
        yield SUPERUSER_EMAIL, password
    for name, admin_email in COMPANIES:
        company = db.session.scalar(select(Company).where(Company.name == name))
        if company is None:
            company = Company(name=name)
            db.session.add(company)
            db.session.flush()
        _, password = _user(admin_email, new_password, name=f"{name} admin", company=company)
        if password:
            yield admin_email, password
    config = ensure_global_config()
    if config.host is None:
        config.host, config.port = DEMO_MAIL_HOST, DEMO_MAIL_PORT
        config.default_sender_enabled = True
        config.sender_address, config.sender_name = "noreply@example.com", "Portal demo"
        # The catcher is internal: allow it, as a superuser would allow an internal relay.
        config.egress_allowlist, config.egress_extra_ports = "127.0.0.1/32", str(DEMO_MAIL_PORT)
