"""A company that overrides only its sender: its mail takes the global server, now and later."""

import email
from email import policy

from support.factories import configure, queue, row
from support.forms import company_url
from support.smtp_servers import RecordingHandler, server_context, smtp_server

from portal import crypto, delivery
from portal.delivery import connection_check
from portal.extensions import db
from portal.outbox import store
from portal.settings.resolution import resolve

SENDER_ONLY = {
    "override_server": "global",
    "override_auth": "global",
    "override_sender": "company",
    "override_delivery": "global",
    "shown": ["sender"],
    "sender_address": "noreply@example.com",
    "sender_name": "Acme Billing",
}


def _from(message) -> str:
    return email.message_from_bytes(message.data, policy=policy.default)["From"]


def test_sender_name_override_rides_the_global_server_and_follows_its_later_change(
    app, people, certs, as_acme
):
    app.config["MAIL_CA_FILE"] = str(certs.ca)
    tls = server_context(certs.good)
    first = RecordingHandler(user="global", password="global-pass")
    second = RecordingHandler(user="global", password="global-pass")
    with (
        smtp_server(first, starttls=tls, require_starttls=True, auth=True) as first_server,
        smtp_server(second, starttls=tls, require_starttls=True, auth=True) as second_server,
    ):
        configure(
            port=first_server.port,
            security="starttls",
            auth_enabled=True,
            username="global",
            password_encrypted=crypto.encrypt("global-pass"),
        )
        response = as_acme.post(company_url(people.acme), SENDER_ONLY, htmx=True)
        assert response.status_code == 200, response.text

        (before,) = queue(people.acme)
        delivery.deliver(before.id)
        assert row(before).status == "sent", row(before).last_reply
        (arrived,) = first.messages
        assert _from(arrived) == "Acme Billing <noreply@example.com>"
        assert [a for c in first.connections for a in c.auths] == [("global", True, True)]

        # The superuser moves the global server.
        configure(port=second_server.port, security="starttls")
        (after,) = queue(people.acme)
        delivery.deliver(after.id)
        assert row(after).status == "sent", row(after).last_reply
    assert len(first.messages) == 1
    (moved,) = second.messages
    assert _from(moved) == "Acme Billing <noreply@example.com>"
    assert [a for c in second.connections for a in c.auths] == [("global", True, True)]


def test_the_connection_test_of_a_sender_override_uses_the_global_server_and_password(
    app, people, certs
):
    app.config["MAIL_CA_FILE"] = str(certs.ca)
    tls = server_context(certs.good)
    handler = RecordingHandler(user="global", password="global-pass")
    with smtp_server(handler, starttls=tls, require_starttls=True, auth=True) as server:
        configure(
            port=server.port,
            security="starttls",
            auth_enabled=True,
            username="global",
            password_encrypted=crypto.encrypt("global-pass"),
        )
        configure(
            people.acme,
            override_server=False,
            override_auth=False,
            override_delivery=False,
            sender_name="Acme Billing",
        )
        values = {"sender_address": "noreply@example.com", "sender_name": "Acme Billing"}
        values.update(override_sender=True, override_server=False)
        outcome = connection_check.run(
            values, "", people.acme.mail_config, people.acme, people.acme_admin, "to@example.org"
        )
    assert outcome.result.ok, outcome.result
    assert outcome.server == f"127.0.0.1:{server.port}" == f"127.0.0.1:{resolve(people.acme).port}"
    assert [a for c in handler.connections for a in c.auths] == [("global", True, True)]
    assert _from(handler.messages[0]) == "Acme Billing <noreply@example.com>"


def test_the_global_mailbox_waits_for_companies_following_its_authentication_only(app, people):
    glob = configure()
    configure(people.acme, override_server=False, override_auth=False, override_delivery=False)
    configure(people.globex, override_sender=False, override_delivery=False)
    mails = [*queue(people.acme), *queue(people.globex), *queue(None)]
    for mail in mails:
        mail.status = "deferred"
    db.session.commit()
    # Acme's mail and the mail of no company wait for the global mailbox; Globex has its own.
    assert store.waiting(glob) == 2
    assert store.waiting(people.globex.mail_config) == 1
