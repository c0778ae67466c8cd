"""portal.outbox.send: validation, the sender rules, the outbox row, and the wake-up."""

import email
from email import policy

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from support.factories import configure, mail_config, row, stored_mails
from support.forms import GLOBAL_URL, VALID, company_data, company_url
from support.queries import statements
from support.wakeups import wakeups
from support.web import Browser

from portal import crypto, delivery, outbox
from portal.app import create_app
from portal.exceptions import MailValidationError
from portal.extensions import db
from portal.models import OutboxMessage, User


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
    with wakeups() as heard:
        with pytest.raises(MailValidationError) as raised:
            outbox.send(people.acme, **arguments)
        assert heard() == []
    assert field in raised.value.errors
    assert db.session.query(OutboxMessage).count() == 0


def test_too_large_mail_is_refused(app, global_settings, people):
    app.config["MAIL_MAX_MESSAGE_BYTES"] = 10_000
    with pytest.raises(MailValidationError) as raised:
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="x" * 20_000)
    assert "size" in raised.value.errors


def test_no_sender_configured_is_a_clear_error(app, people):
    with pytest.raises(MailValidationError) as raised:
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    assert raised.value.errors == {"from": "No sender address is configured for this company."}


def test_the_row_is_committed_before_one_wake_up_that_names_only_its_lane(
    app, global_settings, people
):
    with wakeups() as heard:
        message = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
        (stored,) = stored_mails()
        assert stored.status == "queued" and stored.group_key is None
        assert heard() == [[stored.lane]]
    assert stored.lane == message.lane and len(stored.lane) == 64  # a hash of the destination


def test_grouped_mail_of_two_companies_on_the_global_relay_shares_one_lane(
    app, global_settings, people
):
    global_settings.group_sends = True
    db.session.commit()
    with wakeups() as heard:
        first = outbox.send(people.acme, to=["x@example.org"], subject="1", text="t")
        second = outbox.send(people.globex, to=["y@example.org"], subject="2", text="t")
        assert first.group_key == second.group_key == first.lane == second.lane
        assert heard() == [[first.lane], [first.lane]]


def test_with_redis_down_the_mail_stays_queued_and_the_poll_delivers_it(
    app, server, people, monkeypatch, caplog
):
    configure(port=server.port)

    def refuse(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    # A real Redis cannot be made to fail on cue; the wake-up is where the outage bites.
    monkeypatch.setattr(Redis, "publish", refuse)
    message = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    monkeypatch.undo()
    (stored,) = stored_mails()
    assert stored.status == "queued"
    assert "not handed to the worker" in caplog.text
    assert delivery.drain() == 1  # what a worker's poll does without a wake-up
    assert row(message).status == "sent" and len(server.handler.messages) == 1


def test_one_send_reads_one_small_row_before_its_insert(app, global_settings, people):
    outbox.send(people.acme, to=["x@example.org"], subject="warm", text="t")
    with statements() as seen:
        outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    stamp, insert = seen
    # The version stamp: the company's switch and the two rows' ids and times, nothing more.
    assert stamp.startswith("SELECT companies.use_own_mail_settings, own.id, own.updated_at")
    assert insert.startswith("INSERT INTO outbox_messages")


def test_settings_saved_on_the_settings_pages_are_used_by_the_next_send(
    app, web, as_superuser, people
):
    def sender(company) -> tuple[str, str] | None:
        message = outbox.send(company, to=["x@example.org"], subject="s", text="t")
        return address(parsed(message), "From")

    assert as_superuser.post(GLOBAL_URL, VALID, htmx=True).status_code == 200
    assert sender(people.acme) == ("Example", "noreply@example.com")
    renamed = {**VALID, "sender_name": "Renamed", "password": ""}
    assert as_superuser.post(GLOBAL_URL, renamed, htmx=True).status_code == 200
    assert sender(people.acme) == ("Renamed", "noreply@example.com")

    admin = Browser(web.test_client())
    admin.login(people.acme_admin.email)
    own = company_data(sender_name="Acme")
    assert admin.post(company_url(people.acme), own, htmx=True).status_code == 200
    assert sender(people.acme) == ("Acme", "mail@acme.example.com")
    assert sender(people.globex) == ("Renamed", "noreply@example.com")
    off = {**own, "use_own": ""}
    assert admin.post(company_url(people.acme), off, htmx=True).status_code == 200
    assert sender(people.acme) == ("Renamed", "noreply@example.com")


def test_a_change_made_by_another_process_is_used_by_the_next_send(
    app, app_config, global_settings, people
):
    first = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    assert address(parsed(first), "From") == ("Example Portal", "noreply@example.com")
    # Loaded in this session again, so its old values sit in the session's identity map.
    assert global_settings.sender_name == "Example Portal"
    other = create_app(app_config)  # its own session and connections, as another process
    with other.app_context():
        mail_config(sender_name="Changed Elsewhere")
        db.session.remove()
        db.engine.dispose()
    message = outbox.send(people.acme, to=["x@example.org"], subject="s", text="t")
    assert address(parsed(message), "From") == ("Changed Elsewhere", "noreply@example.com")
