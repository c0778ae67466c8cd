"""The enqueue API: authentication, queueing, idempotency, limits, errors and the spec."""

import base64
import email
import io
import threading
from email import policy

import pytest
from sqlalchemy import func, select
from support.api import MESSAGES, auth, mail_body, new_key
from support.factories import stored_mails
from support.forms import company_data

from portal.extensions import db
from portal.keys import api_keys
from portal.models import IdempotencyRecord
from portal.web import api

PDF = b"%PDF-1.4 fake invoice\n"


@pytest.fixture
def acme_key(people, mail_settings) -> str:
    return new_key(people.acme, people.acme_admin)


@pytest.fixture
def globex_key(people, mail_settings) -> str:
    return new_key(people.globex, people.globex_admin)


@pytest.fixture
def client(web):
    return web.test_client()


def test_post_queues_the_mail(client, acme_key, people):
    body = mail_body(
        cc=["Boss@Example.org"],
        bcc=["archive@example.org"],
        html="<p>Attached.</p>",
        reply_to="billing@acme.example.com",
        attachments=[
            {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(PDF).decode(),
            }
        ],
    )
    response = client.post(MESSAGES, json=body, headers=auth(acme_key))
    assert response.status_code == 202, response.json
    (row,) = stored_mails()
    assert response.json == {"id": row.id, "message_id": row.message_id, "status": "queued"}
    assert row.company_id == people.acme.id and row.user_id is None
    assert row.recipients == ["customer@example.org", "Boss@example.org", "archive@example.org"]
    assert row.subject == "Invoice"
    mail = email.message_from_bytes(row.raw, policy=policy.default)
    assert mail["Subject"] == "Invoice" and mail["To"] == "customer@example.org"
    assert mail["Cc"] == "Boss@example.org" and mail["Bcc"] is None
    assert mail["Reply-To"] == "billing@acme.example.com"
    assert mail["Message-ID"] == row.message_id
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF
    assert mail.get_body(("plain",)).get_content().strip() == "Attached."


def test_get_shows_the_delivery_state(client, acme_key):
    created = client.post(MESSAGES, json=mail_body(cc=["b@example.org"]), headers=auth(acme_key))
    url = f"{MESSAGES}/{created.json['id']}"
    shown = client.get(url, headers=auth(acme_key))
    assert shown.status_code == 200
    assert shown.json["recipients"] == {"customer@example.org": "queued", "b@example.org": "queued"}
    assert shown.json["status"] == "queued" and shown.json["attempts"] == 0
    assert shown.json["sent_at"] is None and shown.json["created_at"].endswith("+00:00")

    (row,) = stored_mails()
    row.status, row.attempts, row.last_reply = "sent", 1, "250 2.0.0 queued as ABC"
    row.sent_at = row.created_at
    row.recipient_results = {
        "customer@example.org": {"status": "sent", "code": 250, "reply": "ok"},
        "b@example.org": {"status": "failed", "code": 550, "reply": "no such user"},
    }
    db.session.commit()
    shown = client.get(url, headers=auth(acme_key)).json
    assert shown == {
        "id": row.id,
        "message_id": row.message_id,
        "status": "sent",
        "attempts": 1,
        "last_reply": "250 2.0.0 queued as ABC",
        "created_at": shown["created_at"],
        "sent_at": shown["created_at"],
        "recipients": {"customer@example.org": "sent", "b@example.org": "failed"},
    }


def test_same_idempotency_key_sends_once(client, acme_key):
    headers = auth(acme_key, **{"Idempotency-Key": "invoice-42"})
    first = client.post(MESSAGES, json=mail_body(), headers=headers)
    again = client.post(MESSAGES, json=mail_body(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json == first.json
    assert len(stored_mails()) == 1


def test_different_idempotency_keys_send_twice(client, acme_key):
    for key in ("invoice-42", "invoice-43"):
        response = client.post(
            MESSAGES, json=mail_body(), headers=auth(acme_key, **{"Idempotency-Key": key})
        )
        assert response.status_code == 202
    assert len(stored_mails()) == 2


def test_idempotency_keys_belong_to_one_api_key(client, people, acme_key):
    other = new_key(people.acme, name="Other service")
    ids = {
        client.post(
            MESSAGES, json=mail_body(), headers=auth(token, **{"Idempotency-Key": "k"})
        ).json["id"]
        for token in (acme_key, other)
    }
    assert len(ids) == 2


def test_a_refused_request_does_not_use_up_its_idempotency_key(client, acme_key):
    headers = auth(acme_key, **{"Idempotency-Key": "retry-me"})
    refused = client.post(MESSAGES, json=mail_body(to=["not an address"]), headers=headers)
    assert refused.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    assert client.post(MESSAGES, json=mail_body(), headers=headers).status_code == 202
    assert len(stored_mails()) == 1


def test_concurrent_retries_send_once(web, acme_key):
    """Requests racing with one Idempotency-Key: one mail; the others get its id or a 409."""
    barrier = threading.Barrier(6)
    answers = []

    def post():
        client = web.test_client()
        barrier.wait()
        response = client.post(
            MESSAGES, json=mail_body(), headers=auth(acme_key, **{"Idempotency-Key": "race"})
        )
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (row,) = stored_mails()
    assert {status for status, _ in answers} <= {202, 409} and len(answers) == 6
    assert all(body["id"] == row.id for status, body in answers if status == 202)


def test_a_key_whose_first_request_never_finished_answers_409(
    client, people, acme_key, monkeypatch
):
    monkeypatch.setattr(api, "REPLAY_WAIT_SECONDS", 0.1)
    (key,) = api_keys.company_keys(people.acme)
    db.session.add(IdempotencyRecord(api_key_id=key.id, key="lost"))
    db.session.commit()
    headers = auth(acme_key, **{"Idempotency-Key": "lost"})
    response = client.post(MESSAGES, json=mail_body(), headers=headers)
    assert response.status_code == 409 and response.json == {"error": api.MSG_KEY_PENDING}
    assert stored_mails() == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer pk_not-a-key"},
    ],
    ids=["missing", "basic", "empty", "unknown"],
)
@pytest.mark.parametrize("method", ["post", "get"])
def test_bad_keys_are_refused(client, acme_key, headers, method):
    response = getattr(client, method)(
        MESSAGES if method == "post" else f"{MESSAGES}/1", json=mail_body(), headers=headers
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json == {"error": "Send a valid API key: Authorization: Bearer <key>."}
    assert stored_mails() == []


def test_revoked_keys_stop_working(client, as_acme, people, acme_key):
    assert client.post(MESSAGES, json=mail_body(), headers=auth(acme_key)).status_code == 202
    (key,) = api_keys.company_keys(people.acme)
    as_acme.post(f"/companies/{people.acme.id}/api-keys/{key.id}/revoke", {}, htmx=True)
    response = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key))
    assert response.status_code == 401 and response.json["error"]
    assert len(stored_mails()) == 1


def test_a_portal_session_is_no_api_key(as_acme, acme_key):
    assert as_acme.client.post(MESSAGES, json=mail_body()).status_code == 401


def test_last_used_is_noted(client, people, acme_key):
    (key,) = api_keys.company_keys(people.acme)
    assert key.last_used_at is None
    client.get(f"{MESSAGES}/1", headers=auth(acme_key))
    db.session.expire_all()
    assert key.last_used_at is not None


def test_a_key_never_reads_another_companys_mail(client, acme_key, globex_key):
    acme_mail = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key)).json["id"]
    other = client.get(f"{MESSAGES}/{acme_mail}", headers=auth(globex_key))
    unknown = client.get(f"{MESSAGES}/{acme_mail + 1000}", headers=auth(acme_key))
    assert other.status_code == unknown.status_code == 404
    assert other.json == unknown.json == {"error": "No such message."}
    assert client.get(f"{MESSAGES}/{acme_mail}", headers=auth(acme_key)).status_code == 200


def test_globex_mail_goes_out_for_globex(client, people, globex_key):
    client.post(MESSAGES, json=mail_body(), headers=auth(globex_key))
    (row,) = stored_mails()
    assert row.company_id == people.globex.id


def test_too_large_bodies_are_refused(web, client, acme_key):
    web.config["API_MAX_REQUEST_BYTES"] = 1024
    body = mail_body(text="x" * 2048)
    response = client.post(MESSAGES, json=body, headers=auth(acme_key))
    assert response.status_code == 413 and "1024 bytes" in response.json["error"]
    small = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key))
    assert small.status_code == 202
    assert len(stored_mails()) == 1


def test_streamed_bodies_are_bounded_too(web, client, acme_key):
    """A chunked body has no Content-Length: reading it stops at the limit."""
    web.config["API_MAX_REQUEST_BYTES"] = 1024
    body = io.BytesIO(b'{"to": ["a@example.org"], "text": "' + b"x" * 4096 + b'"}')
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    response = client.post(
        MESSAGES,
        input_stream=body,
        headers=auth(acme_key, **headers),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and response.json["error"]
    assert stored_mails() == []


BAD_ATTACHMENT = {"filename": "a.txt", "content_type": "text/plain", "content_base64": "***"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ([], {"body": "Send a JSON object."}),
        (mail_body(to="customer@example.org"), {"to": "Give a list of email addresses (strings)."}),
        (mail_body(cc=[1, 2]), {"cc": "Give a list of email addresses (strings)."}),
        (mail_body(subject=42), {"subject": "Give a string."}),
        (mail_body(text=["x"]), {"text": "Give a string."}),
        (mail_body(sender="me@example.org"), {"sender": "Unknown field."}),
        (
            mail_body(attachments={"a": 1}),
            {"attachments": "Give a list of objects {filename, content_type, content_base64}."},
        ),
        (
            mail_body(attachments=[BAD_ATTACHMENT]),
            {"attachments[0].content_base64": "Not valid base64."},
        ),
        (
            mail_body(attachments=[{"content_type": "pdf", "content_base64": ""}]),
            {
                "attachments[0].filename": "Give the file name.",
                "attachments[0].content_type": "Give a MIME type such as application/pdf.",
            },
        ),
        (
            mail_body(attachments=[{**BAD_ATTACHMENT, "content_base64": "", "data": "x"}]),
            {"attachments[0].data": "Unknown field."},
        ),
        (
            mail_body(to=["not an address"]),
            {
                "to": "Not a valid email address: 'not an address'. "
                "An email address must have an @-sign."
            },
        ),
        (mail_body(to=[]), {"to": "Give at least one recipient."}),
        (mail_body(text=None), {"text": "Give a text or an HTML body."}),
        (
            mail_body(subject="two\nlines"),
            {"subject": "Line breaks and NUL characters are not allowed in the subject."},
        ),
    ],
)
def test_bad_bodies_are_refused_with_a_message_per_field(client, acme_key, body, errors):
    response = client.post(MESSAGES, json=body, headers=auth(acme_key))
    assert response.status_code == 422
    assert response.json == {"errors": errors}
    assert stored_mails() == []


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("{not json", "application/json"), ("null", "application/json"), ('{"to": []}', "text/plain")],
)
def test_bodies_that_are_no_json_object_are_refused(client, acme_key, data, content_type):
    response = client.post(
        MESSAGES, data=data, headers=auth(acme_key, **{"Content-Type": content_type})
    )
    assert response.status_code == 422 and "body" in response.json["errors"]


def test_overlong_idempotency_keys_are_refused(client, acme_key):
    headers = auth(acme_key, **{"Idempotency-Key": "k" * 256})
    response = client.post(MESSAGES, json=mail_body(), headers=headers)
    assert response.status_code == 422 and "Idempotency-Key" in response.json["errors"]


def test_rate_limit_per_key(web, client, acme_key, people):
    web.config["API_RATE_LIMIT"] = "2 per minute"
    other = new_key(people.acme, name="Other")
    assert client.post(MESSAGES, json=mail_body(), headers=auth(acme_key)).status_code == 202
    assert client.get(f"{MESSAGES}/1", headers=auth(acme_key)).status_code in (200, 404)
    refused = client.post(MESSAGES, json=mail_body(), headers=auth(acme_key))
    assert refused.status_code == 429 and "2 per 1 minute" in refused.json["error"]
    assert int(refused.headers["Retry-After"]) > 0
    assert client.post(MESSAGES, json=mail_body(), headers=auth(other)).status_code == 202
    assert len(stored_mails()) == 2


def test_html_pages_keep_their_own_429(web, as_acme, people):
    """The API's JSON 429 handler is the blueprint's: the connection-test panel keeps its HTML."""
    web.config["MAIL_TEST_RATE_LIMIT"] = "1 per minute"
    url = f"/companies/{people.acme.id}/email/test"
    form = {**company_data(host="127.0.0.1", security="none"), "test_recipient": "a@example.org"}
    assert as_acme.post(url, form, htmx=True).status_code == 200  # refused ones do not count
    refused = as_acme.post(url, form, htmx=True)
    assert refused.status_code == 429 and refused.mimetype == "text/html"


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = response.json
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/messages", "/messages/batch", "/messages/{id}"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    post = spec["paths"]["/messages"]["post"]
    get = spec["paths"]["/messages/{id}"]["get"]
    assert {"202", "401", "413", "422", "429"} <= set(post["responses"])
    assert {"200", "401", "404", "429"} <= set(get["responses"])
    batch = spec["paths"]["/messages/batch"]["post"]
    assert {"202", "401", "409", "413", "422", "429"} <= set(batch["responses"])
    for ref in _refs(spec):
        name = ref.removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], ref
