"""The real worker process (worker.py) against real Redis, database and SMTP servers."""

import email
import time
from email import policy

from sqlalchemy import update
from support.factories import configure, queue, row
from support.oauth import consent
from support.smtp_servers import RecordingHandler, smtp_server
from support.workers import (
    WAIT_SECONDS,
    all_message_ids,
    message_ids,
    wait_for,
    wait_until_final,
)

from portal import redis_client
from portal.extensions import db
from portal.models import OAuthGrant, utcnow
from portal.outbox import system_mail
from portal.settings.resolution import DEFAULT_MAX_SESSIONS


def test_grouping_on_sends_mails_queued_together_over_one_session(workers, people):
    with smtp_server() as server:
        configure(port=server.port, group_sends=True)
        workers.start()
        queue(people.acme, 10)
        wait_until_final(10)
    assert [len(c.messages) for c in server.handler.connections] == [10]


def test_grouping_off_sends_each_mail_over_its_own_session(workers, people):
    with smtp_server() as server:
        configure(port=server.port)
        workers.start()
        queue(people.acme, 5)
        wait_until_final(5)
    assert [len(c.messages) for c in server.handler.connections] == [1] * 5


def test_killed_worker_loses_nothing_and_resends_at_most_its_uncommitted_outcomes(
    workers, people, app
):
    handler = RecordingHandler(data_delay=0.005)
    with smtp_server(handler) as server:
        configure(port=server.port, group_sends=True)
        queue(people.acme, 500)
        first = workers.start()
        while len(handler.messages) < 100:
            time.sleep(0.05)
        workers.kill(first)
        workers.start()
        wait_until_final(500)
    arrived = message_ids(handler)
    assert set(arrived) == all_message_ids()
    # Outcomes are committed in groups: each of the lane's sessions (2, the default cap) may
    # have up to MAIL_COMMIT_EVERY accepted mails not yet committed when it dies.
    twice = [mid for mid, count in arrived.items() if count > 1]
    assert len(twice) <= app.config["MAIL_COMMIT_EVERY"] * DEFAULT_MAX_SESSIONS
    assert max(arrived.values()) <= 2


def test_mail_survives_a_flushed_redis(workers, people):
    with smtp_server() as server:
        configure(port=server.port, group_sends=True)
        queue(people.acme, 20)
        redis_client.connection().flushdb()  # the hand-offs and the scheduled flush are gone
        workers.start()
        wait_until_final(20)
    assert set(message_ids(server.handler)) == all_message_ids()


def test_two_workers_deliver_every_mail_exactly_once(workers, people):
    with smtp_server() as server:
        configure(port=server.port)
        queue(people.acme, 1000)
        workers.start()
        workers.start()
        wait_until_final(1000)
    arrived = message_ids(server.handler)
    assert set(arrived) == all_message_ids() and set(arrived.values()) == {1}


def test_oauth_mail_waits_for_reauthorization_then_goes_out(
    workers, people, connected, provider, smtp, certs
):
    """Two worker processes: one token refresh between them, then invalid_grant, then consent."""
    workers.env["MAIL_CA_FILE"] = str(certs.ca)
    db.session.execute(update(OAuthGrant).values(access_expires_at=utcnow()))
    db.session.commit()
    provider.refresh_delay = 0.3  # strict rotation: a second refresh with the old token fails
    workers.start()
    workers.start()
    queue(people.acme, 20)
    wait_until_final(20)
    assert provider.refresh_count == 1 and len(message_ids(smtp.handler)) == 20

    provider.revoke_all()
    provider.expire_access_tokens()
    db.session.execute(update(OAuthGrant).values(access_expires_at=utcnow()))
    db.session.commit()
    waiting = queue(people.acme, 3)
    deadline = time.monotonic() + WAIT_SECONDS
    while {row(m).status for m in waiting} != {"deferred"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(row(m).last_reply.startswith("Re-authorization needed") for m in waiting)
    assert consent(connected, provider).status_code == 303
    wait_until_final(23)
    assert set(message_ids(smtp.handler)) == all_message_ids()


def test_a_reset_request_handed_to_the_worker_arrives_with_its_link(workers, people):
    """The worker's app (no pages) still renders the system mails its RQ jobs queue."""
    with smtp_server() as server:
        configure(people.acme, port=server.port)
        workers.start()
        system_mail.request_reset(people.acme_admin.email, "http://portal.test/set-password/")
        wait_for(lambda: len(server.handler.messages) == 1, "the reset mail")
    (arrived,) = server.handler.messages
    mail = email.message_from_bytes(arrived.data, policy=policy.default)
    assert arrived.rcpt_tos == [people.acme_admin.email]
    assert mail["Subject"] == system_mail.RESET_SUBJECT
    assert "http://portal.test/set-password/" in mail.get_body(("plain",)).get_content()
