"""Rows the tests need: written straight to the database (each writer commits) and read back."""

from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select

from portal import crypto, delivery, outbox, redis_client
from portal.extensions import db
from portal.keys import api_keys, dkim
from portal.models import Company, MailConfig, OutboxMessage
from portal.outbox import handoff
from portal.settings.resolution import global_config


def mail_config(company: Company | None = None, **overrides) -> MailConfig:
    """Create or update a company's own settings row (None: the global one); commits.

    Only the row: whether the company uses it (use_own_mail_settings) is the caller's to set.
    """
    if company is None:
        config = global_config() or MailConfig(company_id=None)
    else:
        own = select(MailConfig).where(MailConfig.company_id == company.id)
        config = db.session.scalar(own) or MailConfig(company_id=company.id)
    for name, value in overrides.items():
        setattr(config, name, value)
    db.session.add(config)
    db.session.commit()
    return config


def allow_test_server(port: int) -> None:
    """Test servers listen on loopback: allowlist it, and their port, in the global settings."""
    glob = global_config()
    saved = (glob.egress_extra_ports if glob else None) or ""
    ports = {p for p in saved.split(",") if p} | {str(port)}
    mail_config(egress_allowlist="127.0.0.1/32", egress_extra_ports=",".join(sorted(ports)))


def configure(company: Company | None = None, **values) -> MailConfig:
    """Save settings (global, or a company's own and in use) pointing at a test server."""
    settings = {
        "host": "127.0.0.1",
        "port": 25,
        "security": "none",
        "sender_address": "noreply@example.com",
        "sender_name": "Portal",
        "default_sender_enabled": True,
        "timeout_seconds": 5,
        **values,
    }
    allow_test_server(settings["port"])
    if company is not None:
        settings.pop("default_sender_enabled")
        company.use_own_mail_settings = True
    return mail_config(company, **settings)


def queue(company, n=1, **kwargs) -> list[OutboxMessage]:
    """Send n mails through the outbox (subjects "Hello 0", "Hello 1", ...); each commits."""
    fields = {"to": ["rcpt@example.org"], "subject": "Hello", "text": "Body", **kwargs}
    return [
        outbox.send(company, **{**fields, "subject": f"{fields['subject']} {i}"}) for i in range(n)
    ]


def row(message) -> OutboxMessage:
    """The message's row as the database holds it now, past the session's cache."""
    db.session.expire_all()
    return db.session.get(OutboxMessage, message.id)


def run_queued_jobs() -> None:
    """Let a worker run what is queued now (a reset request's lookup), then deliver what is due."""
    SimpleWorker(
        [handoff.mail_queue()], connection=redis_client.connection(), serializer=JSONSerializer
    ).work(burst=True)
    delivery.drain()


def stored_mails() -> list[OutboxMessage]:
    """Every outbox row as the database holds it now, oldest first."""
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def global_with_password(**overrides) -> MailConfig:
    """Global settings that log in with a password and have a default sender."""
    return mail_config(
        **{
            "host": "smtp.example.com",
            "port": 587,
            "security": "starttls",
            "auth_enabled": True,
            "username": "mailer",
            "password_encrypted": crypto.encrypt("global-secret-password"),
            "default_sender_enabled": True,
            "sender_address": "noreply@example.com",
            "sender_name": "Example",
            "timeout_seconds": 30,
            **overrides,
        }
    )


def fill_screens(people) -> OutboxMessage:
    """Something on every screen: a mail in the log, DKIM keys, an API key. Commits."""
    configure(people.acme, sender_address="mail@acme.example.com")
    configure(sender_address="noreply@example.com")
    mail = outbox.send(people.acme, to=["ann@example.org"], subject="Welcome aboard", text="Hi Ann")
    dkim.generate(people.acme, "acme.example.com", "portal1", people.acme_admin)
    dkim.generate(None, "example.com", "portal1", people.superuser)
    api_keys.create(people.acme, "Shop backend", people.acme_admin)
    db.session.commit()
    return mail
