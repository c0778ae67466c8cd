"""`portal rotate-secrets`: every stored secret moves to the newest key, and mail still goes out."""

import email
import uuid
from email import policy

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from support.factories import allow_test_server, mail_config
from support.forms import company_data, company_url
from support.oauth import expire_cached_token
from support.smtp_servers import RecordingHandler, server_context, smtp_server
from support.web import Browser
from support.workers import wait_until_final

from portal import crypto, outbox
from portal.exceptions import SecretError
from portal.extensions import db
from portal.keys import dkim
from portal.models import DkimKey, MailConfig, OAuthGrant, OutboxMessage

NEW = Fernet.generate_key().decode()
LINK = f"https://portal.test/invite/{uuid.uuid4().hex}"
KINDS = (
    "SMTP passwords",
    "OAuth2 client secrets",
    "OAuth2 refresh tokens",
    "OAuth2 access tokens",
    "DKIM private keys",
    "sealed mails (one-time links)",
)


def use_keys(app, keys: str) -> None:
    """Run on these keys from now on, as a restart with PORTAL_ENCRYPTION_KEYS=keys would."""
    app.config["PORTAL_ENCRYPTION_KEYS"] = keys
    crypto.init_app(app)


def stored_ciphertexts() -> dict[str, bytes]:
    """Each kind's one stored secret, as the database holds it now."""
    db.session.expire_all()
    found = {
        "SMTP passwords": select(MailConfig.password_encrypted),
        "OAuth2 client secrets": select(MailConfig.oauth_client_secret_encrypted),
        "OAuth2 refresh tokens": select(OAuthGrant.refresh_token_encrypted),
        "OAuth2 access tokens": select(OAuthGrant.access_token_encrypted),
        "DKIM private keys": select(DkimKey.private_key_encrypted),
        "sealed mails (one-time links)": select(OutboxMessage.sealed_raw),
    }
    values = {}
    for kind, query in found.items():
        (value,) = [v for v in db.session.scalars(query) if v is not None]
        values[kind] = value if isinstance(value, bytes) else value.encode()
    return values


def opens(token: bytes) -> bool:
    try:
        crypto.decrypt_bytes(token)
    except SecretError:
        return False
    return True


def decrypted() -> dict[str, bytes]:
    return {kind: crypto.decrypt_bytes(token) for kind, token in stored_ciphertexts().items()}


@pytest.fixture
def acme_server(certs, people, web):
    """Acme's own STARTTLS relay with a password, saved by Acme's admin on the Email tab."""
    handler = RecordingHandler(user="acme-mailer", password=f"PW-{uuid.uuid4()}")
    with smtp_server(handler, starttls=server_context(certs.good), auth=True) as running:
        allow_test_server(running.port)
        admin = Browser(web.test_client())
        admin.login(people.acme_admin.email)
        form = company_data(
            host="127.0.0.1",
            port=str(running.port),
            security="starttls",
            auth_enabled="y",
            username=handler.user,
            password=handler.password,
        )
        saved = admin.post(company_url(people.acme), form, htmx=True)
        assert saved.status_code == 200, saved.text
        yield running


def test_rotation_moves_every_secret_to_the_new_key_and_mail_still_goes_out(
    app, app_config, people, connected, provider, smtp, acme_server, workers, certs
):
    old = app_config["PORTAL_ENCRYPTION_KEYS"]
    dkim.generate(people.acme, "acme.example.com", "portal202612", None)
    db.session.commit()
    invitation = outbox.send(
        people.acme, to=["new@example.org"], subject="Join", text=LINK, one_time_link=True
    )
    relayed = outbox.send(people.globex, to=["rcpt@example.org"], subject="Hi", text="Body")
    before = decrypted()
    assert LINK.encode() in before["sealed mails (one-time links)"]

    use_keys(app, NEW)  # the old key is still needed before the rotation: the test can fail
    assert [kind for kind, token in stored_ciphertexts().items() if opens(token)] == []

    use_keys(app, f"{NEW},{old}")
    first = app.test_cli_runner().invoke(args=["rotate-secrets", "--batch-size", "1"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"{kind}: 1 rotated, 0 already current" for kind in KINDS]
    for secret in (acme_server.handler.password, provider.client_secret, LINK):
        assert secret not in first.output
    again = app.test_cli_runner().invoke(args=["rotate-secrets"])
    assert again.output.splitlines() == [f"{kind}: 0 rotated, 1 already current" for kind in KINDS]

    use_keys(app, NEW)
    assert decrypted() == before
    expire_cached_token()  # the worker must use the client secret and the refresh token
    workers.env.update(PORTAL_ENCRYPTION_KEYS=NEW, MAIL_CA_FILE=str(certs.ca))
    workers.start()
    wait_until_final(2)
    db.session.expire_all()
    assert {db.session.get(OutboxMessage, m.id).status for m in (invitation, relayed)} == {"sent"}
    (arrived,) = acme_server.handler.messages
    body = email.message_from_bytes(arrived.data, policy=policy.default).get_content()
    assert LINK in body
    assert (acme_server.handler.user, True, True) in acme_server.handler.connections[0].auths
    assert len(smtp.handler.messages) == 1 and provider.refresh_count == 1


def test_a_secret_no_key_opens_is_left_alone_and_the_command_fails(app, app_config, people):
    old = app_config["PORTAL_ENCRYPTION_KEYS"]
    foreign = Fernet(Fernet.generate_key()).encrypt(b"lost-password").decode()
    mail_config(None, password_encrypted=crypto.encrypt("global-password"))
    mail_config(people.acme, password_encrypted=foreign)
    mail_config(people.globex, password_encrypted=crypto.encrypt("globex-password"))
    use_keys(app, f"{NEW},{old}")

    result = app.test_cli_runner().invoke(args=["rotate-secrets", "--batch-size", "1"])

    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "SMTP passwords: 2 rotated, 0 already current, 1 not readable with any configured key"
    )
    assert "1 stored secrets could not be decrypted and were left as they were" in result.output
    use_keys(app, NEW)
    db.session.expire_all()
    passwords = {c.company_id: c.password_encrypted for c in db.session.scalars(select(MailConfig))}
    assert passwords[people.acme.id] == foreign
    assert crypto.decrypt(passwords[None]) == "global-password"
    assert crypto.decrypt(passwords[people.globex.id]) == "globex-password"
