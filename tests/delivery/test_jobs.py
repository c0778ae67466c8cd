"""Delivery jobs against real SMTP servers on loopback: outcomes, retries, sessions, sweep."""

import email
from datetime import timedelta
from email import policy

import pytest
from rq.registry import ScheduledJobRegistry
from support.factories import configure, queue, row
from support.smtp_servers import (
    RecordingHandler,
    closed_port,
    raw_server,
    server_context,
    smtp_server,
)

from portal import crypto, delivery, redis_client
from portal.delivery import lanes
from portal.extensions import db
from portal.models import as_utc, utcnow
from portal.outbox import handoff, store


def test_plain_delivery_records_sent(app, people, server):
    configure(port=server.port)
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "sent" and stored.attempts == 1 and stored.sent_at is not None
    assert "queued as" in stored.last_reply
    (arrived,) = server.handler.messages
    assert arrived.mail_from == "noreply@example.com" and arrived.rcpt_tos == ["rcpt@example.org"]
    headers = email.message_from_bytes(arrived.data, policy=policy.default)
    assert headers["Message-ID"] == message.message_id and headers["Subject"] == "Hello 0"


def test_each_company_reaches_its_own_server_with_its_own_credentials(app, people, certs):
    app.config["MAIL_CA_FILE"] = str(certs.ca)
    tls = server_context(certs.good)
    acme_handler = RecordingHandler(user="acme", password="acme-pass")
    global_handler = RecordingHandler(user="global", password="global-pass")
    with (
        smtp_server(acme_handler, starttls=tls, require_starttls=True, auth=True) as acme_server,
        smtp_server(global_handler, implicit_tls=tls, auth=True) as global_server,
    ):
        configure(
            port=global_server.port,
            security="ssl",
            auth_enabled=True,
            username="global",
            password_encrypted=crypto.encrypt("global-pass"),
        )
        configure(
            people.acme,
            port=acme_server.port,
            security="starttls",
            auth_enabled=True,
            username="acme",
            password_encrypted=crypto.encrypt("acme-pass"),
            sender_address="mail@acme.example.com",
        )
        (acme_mail,) = queue(people.acme)
        (globex_mail,) = queue(people.globex)
        delivery.deliver(acme_mail.id)
        delivery.deliver(globex_mail.id)
    assert (row(acme_mail).status, row(globex_mail).status) == ("sent", "sent"), row(
        globex_mail
    ).last_reply
    assert [m.mail_from for m in acme_handler.messages] == ["mail@acme.example.com"]
    assert [m.mail_from for m in global_handler.messages] == ["noreply@example.com"]
    # credentials went to their own server only, and only inside TLS
    assert [a for c in acme_handler.connections for a in c.auths] == [("acme", True, True)]
    assert [a for c in global_handler.connections for a in c.auths] == [("global", True, True)]


@pytest.mark.parametrize("reply", ["421 4.3.2 Going down", "450 4.2.0 Busy", "451 4.3.0 Later"])
def test_temporary_refusal_defers_with_backoff_and_the_retry_is_due_then(app, people, reply):
    with smtp_server(RecordingHandler(mail_reply=reply)) as running:
        configure(port=running.port)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "deferred" and reply.split()[0] in stored.last_reply
    wait = as_utc(stored.next_attempt_at) - utcnow()
    assert timedelta(seconds=50) < wait <= timedelta(seconds=60)
    # No job waits in RQ: the worker's scan knows when the retry is due, to the microsecond.
    scan = lanes.scan(utcnow(), 0, 1)
    assert scan.lanes == [] and scan.next_due == as_utc(stored.next_attempt_at)
    assert ScheduledJobRegistry(queue=handoff.mail_queue(app)).get_job_ids() == []


def test_backoff_doubles_up_to_the_ceiling_then_gives_up(app, people):
    app.config.update(MAIL_RETRY_INITIAL_SECONDS=60, MAIL_RETRY_MAX_SECONDS=200)
    with smtp_server(RecordingHandler(mail_reply="451 4.3.0 Later")) as running:
        configure(port=running.port)
        (message,) = queue(people.acme)
        waits = []
        for _ in range(4):
            delivery.deliver(message.id)
            stored = row(message)
            waits.append(round((as_utc(stored.next_attempt_at) - utcnow()).total_seconds(), -1))
            stored.next_attempt_at = utcnow()  # due again now
            db.session.commit()
        assert waits == [60, 120, 200, 200]
        stored.created_at = utcnow() - timedelta(hours=25)
        db.session.commit()
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "failed" and stored.last_reply.startswith("Gave up retrying")


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (RecordingHandler(mail_reply="550 5.7.1 Sender refused"), "550"),
        (RecordingHandler(data_reply="552 5.3.4 Message too big"), "552"),
    ],
)
def test_permanent_refusal_fails_without_retry(app, people, handler, code):
    with smtp_server(handler) as running:
        configure(port=running.port)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "failed" and code in stored.last_reply
    assert ScheduledJobRegistry(queue=handoff.mail_queue(app)).get_job_ids() == []


def test_one_refused_recipient_of_three_fails_alone(app, people):
    handler = RecordingHandler(rcpt_replies={"b@example.org": "550 5.1.1 No such user"})
    with smtp_server(handler) as running:
        configure(port=running.port)
        (message,) = queue(people.acme, to=["a@example.org", "b@example.org", "c@example.org"])
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "sent"
    assert {r: v["status"] for r, v in stored.recipient_results.items()} == {
        "a@example.org": "sent",
        "b@example.org": "failed",
        "c@example.org": "sent",
    }
    assert stored.recipient_results["b@example.org"]["code"] == 550
    (arrived,) = handler.messages
    assert arrived.rcpt_tos == ["a@example.org", "c@example.org"]


def test_temporarily_refused_recipient_is_retried_alone(app, people):
    handler = RecordingHandler(rcpt_replies={"b@example.org": "450 4.2.1 Try later"})
    with smtp_server(handler) as running:
        configure(port=running.port)
        (message,) = queue(people.acme, to=["a@example.org", "b@example.org"])
        delivery.deliver(message.id)
        assert row(message).status == "deferred"
        handler.rcpt_replies.clear()
        stored = row(message)
        stored.next_attempt_at = utcnow()
        db.session.commit()
        delivery.deliver(message.id)
    assert row(message).status == "sent"
    assert [m.rcpt_tos for m in handler.messages] == [["a@example.org"], ["b@example.org"]]


def test_no_answer_after_the_final_dot_is_unknown_never_resent(app, people):
    with smtp_server(RecordingHandler(data_delay=3)) as running:
        configure(port=running.port, timeout_seconds=1)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "unknown"
    assert ScheduledJobRegistry(queue=handoff.mail_queue(app)).get_job_ids() == []


@pytest.mark.parametrize("kind", ["silent", "trickle", "no_starttls"])
def test_server_faults_defer_the_mail(app, people, kind):
    with raw_server(kind) as running:
        security = "starttls" if kind == "no_starttls" else "none"
        configure(port=running.port, timeout_seconds=1, security=security)
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    stored = row(message)
    assert stored.status == "deferred" and stored.last_reply


def test_wrong_certificate_defers_and_sends_nothing(app, people, certs):
    app.config["MAIL_CA_FILE"] = str(certs.ca)
    handler = RecordingHandler()
    with smtp_server(handler, implicit_tls=server_context(certs.wrong_host)) as running:
        configure(port=running.port, security="ssl")
        (message,) = queue(people.acme)
        delivery.deliver(message.id)
    assert row(message).status == "deferred"
    assert handler.messages == []


def test_a_group_goes_out_over_one_session(app, people, server):
    configure(port=server.port, group_sends=True)
    messages = queue(people.acme, 5) + queue(people.globex, 2)
    assert len({m.group_key for m in messages}) == 1
    delivery.deliver_group(messages[0].group_key)
    assert [row(m).status for m in messages] == ["sent"] * 7
    assert [len(c.messages) for c in server.handler.connections] == [7]


def test_a_large_group_is_split_into_sessions_of_the_group_size(app, people, server):
    app.config["MAIL_GROUP_MAX"] = 3
    configure(port=server.port, group_sends=True)
    messages = queue(people.acme, 7)
    delivery.deliver_group(messages[0].group_key)
    assert [len(c.messages) for c in server.handler.connections] == [3, 3, 1]
    assert {row(m).status for m in messages} == {"sent"}


def test_a_dead_server_defers_the_whole_group_at_once(app, people):
    configure(port=closed_port(), group_sends=True)
    messages = queue(people.acme, 3)
    delivery.deliver_group(messages[0].group_key)
    assert {row(m).status for m in messages} == {"deferred"}


def test_sweep_requeues_mail_of_a_dead_worker_and_delivers_it(app, people, server):
    configure(port=server.port)
    (message,) = queue(people.acme)
    stored = row(message)
    stored.status, stored.lease_until = "sending", utcnow() - timedelta(seconds=1)
    stored.created_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    redis_client.connection(app).flushdb()  # whatever Redis knew is gone too
    assert delivery.sweep() == {"released": 1}
    assert delivery.drain() == 1
    assert row(message).status == "sent" and len(server.handler.messages) == 1


def test_claims_are_exclusive(app, people, server):
    configure(port=server.port)
    (message,) = queue(people.acme)
    lane = row(message).lane
    assert store.claim("a" * 32, lane, limit=1, lease_seconds=60) == [message.id]
    assert store.claim("b" * 32, lane, limit=1, lease_seconds=60) == []
    delivery.deliver(message.id)  # already being sent elsewhere: nothing happens
    assert server.handler.messages == []


def test_an_outcome_from_a_session_that_lost_its_claim_is_not_recorded(app, people, server):
    configure(port=server.port)
    (message,) = queue(people.acme)
    lane = row(message).lane
    assert store.claim("a" * 32, lane, limit=1, lease_seconds=0) == [message.id]
    assert delivery.sweep() == {"released": 1}  # the first session's lease ran out
    assert store.claim("b" * 32, lane, limit=1, lease_seconds=60) == [message.id]
    late = store.record("a" * 32, [(message.id, "late", {"status": "failed"})])
    db.session.commit()
    assert late == []
    stored = row(message)
    assert (stored.status, stored.claim_token, stored.attempts_made) == ("sending", "b" * 32, [])


def test_companies_take_turns_in_a_shared_lane(app, people, server):
    configure(port=server.port)
    messages = queue(people.acme, 6) + queue(people.globex, 2)
    lane = row(messages[0]).lane
    assert row(messages[-1]).lane == lane  # both use the global settings
    claimed = store.claim("a" * 32, lane, limit=4, lease_seconds=60)
    assert claimed == sorted([messages[0].id, messages[1].id, messages[6].id, messages[7].id])
