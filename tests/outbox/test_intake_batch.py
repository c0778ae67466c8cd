"""portal.outbox.send_many: all mails validated first, stored in one transaction, one wake-up."""

import email
from email import policy

import pytest
from support.factories import configure, stored_mails
from support.queries import commits, statements
from support.wakeups import wakeups

from portal import crypto, delivery, outbox
from portal.exceptions import BatchValidationError, MailValidationError
from portal.outbox.intake import MAX_BATCH


def mails(n: int, **fields) -> list[dict]:
    return [
        {"to": [f"rcpt{i}@example.org"], "subject": f"Hello {i}", "text": "Body", **fields}
        for i in range(n)
    ]


def test_a_batch_is_stored_in_one_transaction_and_wakes_the_workers_once(
    app, mail_settings, people
):
    with wakeups() as heard, commits() as committed, statements() as seen:
        messages = outbox.send_many(people.acme, mails(MAX_BATCH))
        assert len(heard()) == 1
    rows = stored_mails()
    assert len(rows) == MAX_BATCH and len(committed) == 1
    assert [m.id for m in messages] == [r.id for r in rows]
    assert [r.subject for r in rows] == [f"Hello {i}" for i in range(MAX_BATCH)]
    assert {r.company_id for r in rows} == {people.acme.id} and {r.status for r in rows} == {
        "queued"
    }
    assert heard() == [[rows[0].lane]]
    inserts = [s for s in seen if s.startswith("INSERT INTO outbox_messages")]
    assert len(inserts) == 1, len(inserts)  # one multi-row INSERT, not one per mail


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"to": ["not an address"]}, "to"),
        ({"to": []}, "to"),
        ({"subject": "Hi\r\nBcc: evil@example.com"}, "subject"),
        ({"text": None}, "text"),
        ({"reply_to": "nobody"}, "reply_to"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_one_bad_mail_names_its_place_and_field_and_nothing_is_stored(
    app, mail_settings, people, bad, field
):
    batch = mails(3)
    batch[1] = {**batch[1], **bad}
    with wakeups() as heard:
        with pytest.raises(BatchValidationError) as raised:
            outbox.send_many(people.acme, batch)
        assert heard() == []
    assert list(raised.value.errors) == [f"mails[1].{field}"]
    assert list(raised.value.items) == [1] and field in raised.value.items[1]
    assert isinstance(raised.value, MailValidationError)  # callers of send() catch it too
    assert stored_mails() == []


def test_every_bad_mail_is_named(app, mail_settings, people):
    batch = mails(4)
    batch[0]["to"] = ["x@"]
    batch[3]["text"] = None
    with pytest.raises(BatchValidationError) as raised:
        outbox.send_many(people.acme, batch)
    assert set(raised.value.errors) == {"mails[0].to", "mails[3].text"}
    assert stored_mails() == []


def test_more_than_the_most_mails_per_call_are_refused(app, mail_settings, people):
    with pytest.raises(BatchValidationError) as raised:
        outbox.send_many(people.acme, mails(MAX_BATCH + 1))
    assert raised.value.errors == {"mails": f"At most {MAX_BATCH} mails per call."}
    assert stored_mails() == []


def test_an_empty_batch_stores_nothing_and_wakes_nobody(app, mail_settings, people):
    with wakeups() as heard:
        assert outbox.send_many(people.acme, []) == []
        assert heard() == []


def test_a_batch_rows_are_delivered_with_their_headers(app, server, people):
    configure(port=server.port)
    batch = [
        {"to": ["ann@example.org"], "subject": "First", "text": "One", "cc": ["cc@example.org"]},
        {
            "to": ["bob@example.org"],
            "subject": "Second",
            "html": "<p>Two</p>",
            "bcc": ["hidden@example.org"],
            "reply_to": "desk@example.com",
            "attachments": [outbox.Attachment("a.csv", "text/csv", b"a,b\n")],
        },
        {"to": ["cy@example.org"], "subject": "Third", "text": "Three", "user": people.acme_admin},
    ]
    messages = outbox.send_many(people.acme, batch)
    ids = [m.id for m in messages]
    assert delivery.drain() == 3
    arrived = {m.rcpt_tos[0]: m for m in server.handler.messages}
    rows = {r.id: r for r in stored_mails()}
    assert [rows[i].status for i in ids] == ["sent", "sent", "sent"]
    assert arrived["bob@example.org"].rcpt_tos == ["bob@example.org", "hidden@example.org"]
    for mail_id, (rcpt, subject) in zip(
        ids, [("ann", "First"), ("bob", "Second"), ("cy", "Third")], strict=True
    ):
        headers = email.message_from_bytes(arrived[f"{rcpt}@example.org"].data, policy=policy.SMTP)
        assert headers["Subject"] == subject and headers["To"] == f"{rcpt}@example.org"
        assert headers["Message-ID"] == rows[mail_id].message_id
        assert "Bcc" not in headers and arrived[f"{rcpt}@example.org"].mail_from == (
            "noreply@example.com"
        )
    second = email.message_from_bytes(arrived["bob@example.org"].data, policy=policy.SMTP)
    assert second["Reply-To"] == "desk@example.com"
    assert [a.get_filename() for a in second.iter_attachments()] == ["a.csv"]
    first = email.message_from_bytes(arrived["ann@example.org"].data, policy=policy.SMTP)
    assert first["Cc"] == "cc@example.org" and first["From"] == "Portal <noreply@example.com>"
    third = email.message_from_bytes(arrived["cy@example.org"].data, policy=policy.SMTP)
    assert third["From"].addresses[0].display_name.endswith("(via Acme Ltd)")
    assert third["Reply-To"] == f"{people.acme_admin.name} <{people.acme_admin.email}>"


def test_a_one_time_link_mail_of_a_batch_is_sealed(app, mail_settings, people):
    batch = mails(2)
    batch[1] = {
        **batch[1],
        "text": "https://portal.example/set/secret-token",
        "one_time_link": True,
    }
    outbox.send_many(people.acme, batch)
    plain, sealed = stored_mails()
    assert b"secret-token" not in sealed.raw and sealed.one_time_link
    assert b"secret-token" in crypto.decrypt_bytes(sealed.sealed_raw)
    assert plain.sealed_raw is None and b"Body" in plain.raw
