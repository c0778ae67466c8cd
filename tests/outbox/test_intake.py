"""portal.outbox.send: validation, the sender rules, the outbox row, and the hand-off to RQ."""

import email
import json
import zlib
from email import policy

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.registry import ScheduledJobRegistry
from support.factories import mail_config

from portal import crypto, outbox, redis_client
from portal.exceptions import MailValidationError
from portal.extensions import db
from portal.models import OutboxMessage, User
from portal.outbox import handoff


@pytest.fixture
def global_settings(app):
    return mail_config(
        host="smtp.example.com",
        port=587,
        security="starttls",
        auth_enabled=True,
        username="mailer@example.com",
        password_encrypted=crypto.encrypt("secret"),
        default_sender_enabled=True,
        sender_address="noreply@example.com",
        sender_name="Example Portal",
        reply_to="help@example.com",
        footer_html="<p>Example Ltd</p>",
        footer_text="Example Ltd",
    )


def parsed(message: OutboxMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(message.raw, policy=policy.default)


def address(headers, name: str) -> tuple[str, str] | None:
    """(display name, address) of a header, as a mail program shows them."""
    if headers[name] is None:
        return None
    (found,) = headers[name].addresses
    return found.display_name, found.addr_spec


def queued_jobs(app):
    return handoff.mail_queue(app).get_jobs()


def test_system_mail_comes_from_the_default_sender(app, global_settings, people):
    message = outbox.send(people.acme, to=["a@customer.example.org"], subject="Hi", text="Hello")
    headers = parsed(message)
    assert address(headers, "From") == ("Example Portal", "noreply@example.com")
    assert address(headers, "Sender") is None
    assert headers["Reply-To"] == "help@example.com"
    assert headers["Message-ID"] == message.message_id
    assert message.message_id.endswith("@example.com>")
    assert message.envelope_from == "noreply@example.com"


def test_user_of_the_same_domain_sends_as_themselves(app, global_settings, people):
    user = User(email="ann@example.com", name="Ann Smith", company=people.acme)
    db.session.add(user)
    db.session.commit()
    headers = parsed(
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="t", user=user)
    )
    assert address(headers, "From") == ("Ann Smith", "ann@example.com")
    assert address(headers, "Sender") == ("Example Portal", "noreply@example.com")


def test_user_of_another_domain_is_sent_on_behalf_with_reply_to(app, global_settings, people):
    user = people.acme_admin  # admin@acme.example.com, not example.com
    headers = parsed(
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="t", user=user)
    )
    assert address(headers, "From") == (f"{user.name} (via Acme Ltd)", "noreply@example.com")
    assert address(headers, "Reply-To") == (user.name, user.email)


def test_all_notifications_use_the_default_sender(app, global_settings, people):
    global_settings.all_use_default_sender = True
    db.session.commit()
    message = outbox.send(
        people.acme, to=["x@example.org"], subject="s", text="t", user=people.acme_admin
    )
    headers = parsed(message)
    assert address(headers, "From") == ("Example Portal", "noreply@example.com")
    assert headers["Reply-To"] == "help@example.com"


def test_explicit_reply_to_wins(app, global_settings, people):
    message = outbox.send(
        people.acme, to=["x@example.org"], subject="s", text="t", reply_to="desk@acme.example.com"
    )
    assert parsed(message)["Reply-To"] == "desk@acme.example.com"


def test_footer_is_appended_to_text_and_html(app, global_settings, people):
    message = outbox.send(
        people.acme, to=["x@example.org"], subject="s", text="Body", html="<p>Body</p>"
    )
    leaves = [part for part in parsed(message).walk() if not part.is_multipart()]
    parts = {part.get_content_type(): part.get_content() for part in leaves}
    assert parts["text/plain"].replace("\r\n", "\n").endswith("Body\n\n-- \nExample Ltd\n")
    assert parts["text/html"].rstrip().endswith('<div class="footer"><p>Example Ltd</p></div>')


def test_company_settings_give_the_company_sender(app, global_settings, people):
    people.acme.use_own_mail_settings = True
    mail_config(
        people.acme,
        host="smtp.acme.example.com",
        sender_address="mail@acme.example.com",
        sender_name="Acme",
    )
    acme = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    globex = outbox.send(people.globex, to=["x@example.org"], subject="s", text="t")
    assert address(parsed(acme), "From") == ("Acme", "mail@acme.example.com")
    assert address(parsed(globex), "From") == ("Example Portal", "noreply@example.com")


def test_attachments_and_bcc(app, global_settings, people):
    message = outbox.send(
        people.acme,
        to=["to@example.org"],
        cc=["cc@example.org"],
        bcc=["hidden@example.org"],
        subject="Report",
        text="See attached",
        attachments=[outbox.Attachment("report.csv", "text/csv", b"a,b\n1,2\n")],
    )
    headers = parsed(message)
    assert "hidden@example.org" not in message.raw.decode()
    assert message.recipients == ["to@example.org", "cc@example.org", "hidden@example.org"]
    (attachment,) = list(headers.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to": ["not an address"]}, "to"),
        ({"to": []}, "to"),
        ({"cc": ["x@"]}, "cc"),
        ({"subject": "Hi\r\nBcc: evil@example.com"}, "subject"),
        ({"text": None}, "text"),
        ({"reply_to": "nobody"}, "reply_to"),
    ],
)
def test_invalid_mail_is_refused_and_nothing_stored(app, global_settings, people, kwargs, field):
    arguments = {"to": ["x@example.org"], "subject": "s", "text": "t", **kwargs}
    with pytest.raises(MailValidationError) as raised:
        outbox.send(people.acme, **arguments)
    assert field in raised.value.errors
    assert db.session.query(OutboxMessage).count() == 0
    assert queued_jobs(app) == []


def test_too_large_mail_is_refused(app, global_settings, people):
    app.config["MAIL_MAX_MESSAGE_BYTES"] = 10_000
    with pytest.raises(MailValidationError) as raised:
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="x" * 20_000)
    assert "size" in raised.value.errors


def test_no_sender_configured_is_a_clear_error(app, people):
    with pytest.raises(MailValidationError) as raised:
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    assert raised.value.errors == {"from": "No sender address is configured for this company."}


def test_row_is_committed_and_the_job_carries_only_its_id(app, global_settings, people):
    message = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    db.session.expire_all()
    stored = db.session.get(OutboxMessage, message.id)
    assert stored.status == "queued" and stored.group_key is None
    (job,) = queued_jobs(app)
    assert job.func_name == "portal.delivery.deliver" and job.args == [message.id]
    stored_job = zlib.decompress(redis_client.connection(app).hget(f"rq:job:{job.id}", "data"))
    assert json.loads(stored_job)[2] == [message.id]  # JSON (not pickle): function, -, args
    assert b"secret" not in stored_job and b"x@example.org" not in stored_job


def test_grouped_mail_schedules_one_flush_per_group(app, global_settings, people):
    global_settings.group_sends = True
    db.session.commit()
    first = outbox.send(people.acme, to=["x@example.org"], subject="1", text="t")
    second = outbox.send(people.globex, to=["y@example.org"], subject="2", text="t")
    assert first.group_key == second.group_key is not None
    scheduled = ScheduledJobRegistry(queue=handoff.mail_queue(app))
    (job_id,) = scheduled.get_job_ids()
    assert handoff.mail_queue(app).fetch_job(job_id).args == [first.group_key]


def test_redis_down_keeps_the_mail_for_the_sweep(app, global_settings, people, monkeypatch):
    def refuse(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    # A real Redis cannot be made to fail on cue; the queue call is where the outage bites.
    monkeypatch.setattr(handoff.Queue, "enqueue", refuse)
    message = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    monkeypatch.undo()
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).status == "queued"
    app.config["MAIL_HANDOFF_GRACE_SECONDS"] = 0
    from portal.delivery import sweep

    assert sweep() == {"released": 0, "handed": 1}
    assert [job.args for job in queued_jobs(app)] == [[message.id]]
