"""POST /api/v1/messages/batch: up to 500 mails, stored all or none, with per-item keys."""

import threading

import pytest
from sqlalchemy import func, select
from support.api import BATCH, MESSAGES, auth, batch_body, mail_body, new_key
from support.factories import stored_mails
from support.wakeups import wakeups

from portal.extensions import db
from portal.models import IdempotencyRecord
from portal.outbox.intake import MAX_BATCH
from portal.web import api_batch


@pytest.fixture
def acme_key(people, mail_settings) -> str:
    return new_key(people.acme, people.acme_admin)


@pytest.fixture
def client(web):
    return web.test_client()


def keys_stored() -> int:
    return db.session.scalar(select(func.count()).select_from(IdempotencyRecord))


def mail(i: int, **fields) -> dict:
    return mail_body(**{"to": [f"rcpt{i}@example.org"], "subject": f"Invoice {i}", **fields})


def test_a_bad_item_in_the_middle_refuses_the_whole_batch(client, acme_key):
    body = batch_body(
        mail(0, idempotency_key="a"), mail(1, to=["bob@"]), mail(2, idempotency_key="c")
    )
    response = client.post(BATCH, json=body, headers=auth(acme_key))
    assert response.status_code == 422, response.json
    assert response.json == {
        "results": [
            {"index": 0, "status": "not_stored", "error": api_batch.MSG_NOT_STORED},
            {
                "index": 1,
                "status": "invalid",
                "errors": {
                    "to": "Not a valid email address: 'bob@'. "
                    "There must be something after the @-sign."
                },
            },
            {"index": 2, "status": "not_stored", "error": api_batch.MSG_NOT_STORED},
        ]
    }
    assert stored_mails() == [] and keys_stored() == 0


def test_a_batch_of_500_is_queued_with_one_wake_up(app, client, acme_key, people):
    body = batch_body(*(mail(i) for i in range(MAX_BATCH)))
    with wakeups(app) as heard:
        response = client.post(BATCH, json=body, headers=auth(acme_key))
        assert response.status_code == 202, response.json
        rows = stored_mails()
        assert heard() == [[rows[0].lane]]
    assert len(rows) == MAX_BATCH and {r.company_id for r in rows} == {people.acme.id}
    assert response.json["results"] == [
        {
            "index": i,
            "status": "queued",
            "id": row.id,
            "message_id": row.message_id,
            "replayed": False,
        }
        for i, row in enumerate(rows)
    ]
    assert [r.recipients for r in rows] == [[f"rcpt{i}@example.org"] for i in range(MAX_BATCH)]
    shown = client.get(f"{MESSAGES}/{rows[-1].id}", headers=auth(acme_key))
    assert shown.status_code == 200 and shown.json["status"] == "queued"


@pytest.mark.parametrize(
    "body",
    [
        batch_body(*(mail(i) for i in range(MAX_BATCH + 1))),
        batch_body(),
        {"messages": mail(0)},
        {"messages": [mail(0)], "priority": "high"},
        [mail(0)],
    ],
    ids=["501 items", "no item", "not a list", "an unknown field", "not an object"],
)
def test_a_batch_of_the_wrong_shape_is_refused_whole(client, acme_key, body):
    response = client.post(BATCH, json=body, headers=auth(acme_key))
    assert response.status_code == 422 and response.json["errors"]
    assert stored_mails() == []


def test_a_key_used_before_answers_the_earlier_mail_and_stores_nothing_new(client, acme_key):
    first = client.post(
        BATCH, json=batch_body(mail(0, idempotency_key="k0"), mail(1)), headers=auth(acme_key)
    )
    assert first.status_code == 202
    header = auth(acme_key, **{"Idempotency-Key": "single"})
    single = client.post(MESSAGES, json=mail(2), headers=header)
    again = client.post(
        BATCH,
        json=batch_body(mail(0, idempotency_key="k0"), mail(2, idempotency_key="single"), mail(3)),
        headers=auth(acme_key),
    )
    assert again.status_code == 202, again.json
    replayed, from_header, new = again.json["results"]
    assert replayed == {**first.json["results"][0], "replayed": True}
    assert from_header == {**single.json, "index": 1, "replayed": True}
    assert new["replayed"] is False and new["id"] not in (replayed["id"], from_header["id"])
    assert [r.subject for r in stored_mails()] == [
        "Invoice 0",
        "Invoice 1",
        "Invoice 2",
        "Invoice 3",
    ]
    every_key_again = client.post(
        BATCH, json=batch_body(mail(0, idempotency_key="k0")), headers=auth(acme_key)
    )
    assert every_key_again.status_code == 202 and len(stored_mails()) == 4


def test_concurrent_retries_of_a_batch_store_it_once(web, acme_key):
    """Batches racing with the same keys: one stores them; the others answer its ids or 409."""
    body = batch_body(*(mail(i, idempotency_key=f"race-{i}") for i in range(3)))
    barrier = threading.Barrier(4)
    answers = []

    def post():
        client = web.test_client()
        barrier.wait()
        response = client.post(BATCH, json=body, headers=auth(acme_key))
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = stored_mails()
    assert len(rows) == 3 and keys_stored() == 3 and len(answers) == 4
    assert {status for status, _ in answers} <= {202, 409}
    ids = [row.id for row in rows]
    for status, answer in answers:
        if status == 202:
            assert [item["id"] for item in answer["results"]] == ids


def test_two_items_may_not_share_a_key(client, acme_key):
    body = batch_body(mail(0, idempotency_key="same"), mail(1, idempotency_key="same"))
    response = client.post(BATCH, json=body, headers=auth(acme_key))
    assert response.status_code == 422
    assert response.json["results"][1]["errors"] == {"idempotency_key": api_batch.MSG_SAME_KEY}
    assert stored_mails() == [] and keys_stored() == 0


def test_a_mail_too_large_to_send_refuses_the_batch_and_frees_its_keys(web, client, acme_key):
    web.config["MAIL_MAX_MESSAGE_BYTES"] = 2000
    body = batch_body(mail(0, idempotency_key="a"), mail(1, idempotency_key="b", text="x" * 4000))
    refused = client.post(BATCH, json=body, headers=auth(acme_key))
    assert refused.status_code == 422
    assert refused.json["results"][0]["status"] == "not_stored"
    assert list(refused.json["results"][1]["errors"]) == ["size"]
    assert stored_mails() == [] and keys_stored() == 0
    body["messages"][1]["text"] = "short"
    assert client.post(BATCH, json=body, headers=auth(acme_key)).status_code == 202
    assert len(stored_mails()) == 2 and keys_stored() == 2


def test_the_idempotency_key_header_is_refused_on_a_batch(client, acme_key):
    headers = auth(acme_key, **{"Idempotency-Key": "whole-batch"})
    response = client.post(BATCH, json=batch_body(mail(0)), headers=headers)
    assert response.status_code == 422
    assert response.json == {"errors": {"Idempotency-Key": api_batch.MSG_HEADER}}
    assert stored_mails() == []


def test_a_batch_counts_as_one_request_towards_the_rate_limit(web, client, acme_key):
    web.config["API_RATE_LIMIT"] = "2 per minute"
    many = batch_body(*(mail(i) for i in range(10)))
    assert client.post(BATCH, json=many, headers=auth(acme_key)).status_code == 202
    assert client.post(MESSAGES, json=mail(10), headers=auth(acme_key)).status_code == 202
    refused = client.post(BATCH, json=many, headers=auth(acme_key))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert len(stored_mails()) == 11


def test_a_batch_has_its_own_size_limit(web, client, acme_key):
    web.config["API_MAX_BATCH_BYTES"] = 2048
    large = batch_body(*(mail(i) for i in range(30)))
    response = client.post(BATCH, json=large, headers=auth(acme_key))
    assert response.status_code == 413 and "2048 bytes" in response.json["error"]
    assert (
        client.post(MESSAGES, json=mail(0, text="x" * 4096), headers=auth(acme_key)).status_code
        == 202
    )
    assert client.post(BATCH, json=batch_body(mail(1)), headers=auth(acme_key)).status_code == 202
    assert len(stored_mails()) == 2


def test_a_batch_needs_a_valid_key(client, mail_settings):
    response = client.post(BATCH, json=batch_body(mail(0)), headers=auth("pk_wrong"))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert stored_mails() == []
