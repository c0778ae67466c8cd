"""The mail log: lists, filters, keyset pages, detail, resend and live rows, per tenant."""

import base64
import email
import html
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import insert, select
from support.factories import configure

from portal import delivery, outbox, tenancy
from portal.extensions import db
from portal.models import OutboxAttempt, OutboxMessage, utcnow
from portal.outbox import handoff, queries

ROW_ID = re.compile(r'<tr id="mail-row-(\d+)"')
OLDER = re.compile(r'<a href="([^"]+)"[^>]*rel="next"')
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def raw_mail(subject: str, to: list[str], **headers) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Portal <noreply@example.com>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.com")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Body\n")
    return message.as_bytes()


def add_mail(company, subject="Hello", *, status="sent", to=("rcpt@example.org",), **fields):
    """A mail row as delivery leaves it, without sending anything."""
    raw = fields.pop("raw", None) or raw_mail(subject, list(to))
    message = OutboxMessage(
        company_id=company.id if company is not None else None,
        message_id=email.message_from_bytes(raw)["Message-ID"],
        status=status,
        envelope_from="noreply@example.com",
        recipients=list(to),
        subject=subject,
        raw=raw,
        size=len(raw),
        recipient_results=fields.pop("recipient_results", {}),
        created_at=fields.pop("created_at", utcnow()),
        **fields,
    )
    db.session.add(message)
    db.session.commit()
    return message


def stored(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    found = db.session.get(OutboxMessage, message_id)
    db.session.commit()
    return found


def shown_ids(page: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(page)]


def older_link(page: str) -> str | None:
    found = OLDER.search(page)
    return html.unescape(found.group(1)) if found else None


# --- who may see what ---


@pytest.mark.parametrize(
    "url", ["/mail", "/companies/1/mail", "/mail/1", "/mail/rows?ids=1"], ids=str
)
def test_anonymous_is_sent_to_log_in(browser, people, url):
    response = browser.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_anonymous_cannot_resend(browser, people):
    mine = add_mail(people.acme)
    response = browser.post("/mail/resend", {"ids": str(mine.id)})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert (
        db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.resend_of_id.is_not(None)))
        is None
    )


def test_company_admin_sees_only_own_company_mail(as_acme, people):
    add_mail(people.acme, "Acme invoice")
    add_mail(people.globex, "Globex invoice")
    add_mail(None, "Global notice")
    page = as_acme.get(f"/companies/{people.acme.id}/mail")
    assert page.status_code == 200
    assert "Acme invoice" in page.text
    assert "Globex invoice" not in page.text and "Global notice" not in page.text
    assert "<h1>Acme Ltd</h1>" in page.text


def test_company_admin_gets_404_for_other_companies_and_403_for_the_whole_log(as_acme, people):
    assert as_acme.get(f"/companies/{people.globex.id}/mail").status_code == 404
    assert as_acme.get("/mail").status_code == 403


@pytest.mark.parametrize("owner", ["globex", None], ids=["other company", "global"])
def test_company_admin_gets_404_for_a_mail_not_theirs(as_acme, people, owner):
    theirs = add_mail(getattr(people, owner) if owner else None, "Not yours")
    response = as_acme.get(f"/mail/{theirs.id}")
    assert response.status_code == 404 and "Not yours" not in response.text


def test_company_admin_cannot_resend_another_companys_mail(as_acme, people):
    theirs = add_mail(people.globex, "Globex", status="failed")
    response = as_acme.post("/mail/resend", {"ids": str(theirs.id)}, htmx=True)
    assert response.status_code == 200 and "0 mails queued again" in response.text
    assert stored(theirs.id).status == "failed"
    assert db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.id != theirs.id)) is None


@pytest.mark.parametrize(
    ("company", "expected"),
    [("", {"Acme", "Globex", "Global"}), ("global", {"Global"}), ("acme", {"Acme"})],
)
def test_superuser_filters_the_whole_log_by_company(as_superuser, people, company, expected):
    for name, owner in (("Acme", people.acme), ("Globex", people.globex), ("Global", None)):
        add_mail(owner, f"Subject of {name}")
    value = str(people.acme.id) if company == "acme" else company
    page = as_superuser.get(f"/mail?company={value}", htmx=True)
    assert page.status_code == 200 and page.text.lstrip().startswith('<section id="maillog-rows"')
    shown = {name for name in ("Acme", "Globex", "Global") if f"Subject of {name}" in page.text}
    assert shown == expected


def test_superuser_page_offers_every_company_and_global(as_superuser, people):
    page = as_superuser.get("/mail").text
    assert "Global (no company)" in page and "Acme Ltd" in page and "Globex Corp" in page
    assert 'hx-push-url="true"' in page and 'hx-target="#maillog-rows"' in page


# --- filters and pages ---


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", {"Bounced"}),
        ("status=sent", {"Invoice March", "Old news"}),
        ("q=INVOICE", {"Invoice March"}),
        ("q=boss@", {"Bounced"}),
        ("from=2026-03-01", {"Invoice March", "Bounced"}),
        ("to=2026-02-28", {"Old news"}),
        ("from=2026-02-01&to=2026-02-28", {"Old news"}),
        ("q=100%25", set()),  # % is a literal, not a wildcard
    ],
)
def test_filters_and_search(as_acme, people, query, expected):
    add_mail(people.acme, "Invoice March", created_at=BASE)
    add_mail(people.acme, "Bounced", status="failed", to=["Boss@acme.example.com"], created_at=BASE)
    add_mail(people.acme, "Old news", created_at=BASE - timedelta(days=20))
    page = as_acme.get(f"/companies/{people.acme.id}/mail?{query}", htmx=True)
    assert page.status_code == 200
    shown = {s for s in ("Invoice March", "Bounced", "Old news") if f">{s}</a>" in page.text}
    assert shown == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=lost", "Choose a status from the list."),
        ("from=2026-13-01", "Enter a date as YYYY-MM-DD."),
        ("from=2026-03-02&to=2026-03-01", "The end date is before the start date."),
        ("cursor=bm90IGEgY3Vyc29y", "This page link is broken"),
    ],
)
def test_bad_filters_answer_422_with_the_reason(as_acme, people, query, message):
    add_mail(people.acme, "Invoice March")
    page = as_acme.get(f"/companies/{people.acme.id}/mail?{query}", htmx=True)
    assert page.status_code == 422 and message in page.text
    assert "Invoice March" not in page.text


@pytest.fixture
def bulk(app, people) -> list:
    """3,000 mails of two companies, many sharing a created_at, ids unrelated to time order."""
    statuses = queries.STATUSES
    rows = []
    for i in range(3000):
        subject = f"Invoice {i}" if i % 10 == 0 else f"Bulk {i}"
        raw = f"Subject: {subject}\r\n\r\nbody\r\n".encode()
        rows.append(
            {
                "company_id": people.acme.id if i % 3 else people.globex.id,
                "message_id": f"<bulk{i}@example.com>",
                "status": statuses[(i // 2) % len(statuses)],
                "envelope_from": "noreply@example.com",
                "recipients": [f"user{i}@example.org"],
                "subject": subject,
                "raw": raw,
                "size": len(raw),
                "attempts": 1,
                "recipient_results": {},
                "created_at": BASE + timedelta(seconds=(i * 7919) % 997),
            }
        )
    db.session.execute(insert(OutboxMessage.__table__), rows)
    db.session.commit()
    columns = (
        OutboxMessage.id,
        OutboxMessage.company_id,
        OutboxMessage.status,
        OutboxMessage.subject,
        OutboxMessage.created_at,
    )
    found = list(db.session.execute(select(*columns)))
    db.session.commit()
    return sorted(found, key=lambda r: (r.created_at, r.id), reverse=True)


def walk(browser, url: str) -> tuple[list[int], int]:
    """Every row id shown by following the Older links from url, and the number of pages."""
    ids, pages = [], 0
    while url:
        page = browser.get(url, htmx=True)
        assert page.status_code == 200
        shown = shown_ids(page.text)
        assert 0 < len(shown) <= queries.DEFAULT_PAGE_SIZE
        ids += shown
        pages += 1
        url = older_link(page.text)
    return ids, pages


@pytest.mark.parametrize("status", [None, "deferred"])
def test_keyset_pages_of_a_company_have_no_gaps_or_duplicates(as_acme, people, bulk, status):
    expected = [r.id for r in bulk if r.company_id == people.acme.id and status in (None, r.status)]
    url = f"/companies/{people.acme.id}/mail" + (f"?status={status}" if status else "")
    ids, pages = walk(as_acme, url)
    assert ids == expected  # newest first, (created_at, id) descending, all of them once
    assert pages == -(-len(expected) // queries.DEFAULT_PAGE_SIZE)


def test_keyset_pages_of_a_search_keep_the_filter(as_acme, people, bulk):
    expected = [
        r.id for r in bulk if r.company_id == people.acme.id and "invoice" in r.subject.lower()
    ]
    ids, _ = walk(as_acme, f"/companies/{people.acme.id}/mail?q=invoice")
    assert ids == expected and len(expected) > queries.DEFAULT_PAGE_SIZE


def test_keyset_pages_of_everything_for_the_superuser(app, people, bulk):
    ids, cursor = [], None
    while True:
        page = queries.page(queries.LogFilter(tenancy.ALL), cursor)
        ids += [row.id for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert ids == [r.id for r in bulk]


def test_cursor_is_opaque_and_round_trips(app):
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    token = queries.encode_cursor(moment, 42)
    assert "|" not in token and base64.urlsafe_b64decode(token + "==").endswith(b"|42")
    assert queries.decode_cursor(token) == (moment, 42)


def test_list_queries_do_not_load_raw(app, people):
    add_mail(people.acme)
    page = queries.page(queries.LogFilter(people.acme.id))
    assert "raw" not in page.rows[0]._fields


# --- detail ---


def test_detail_shows_headers_text_attachments_attempts_and_results(as_acme, people):
    configure(people.acme, port=2525, sender_address="mail@acme.example.com", reply_to=None)
    sent = outbox.send(
        people.acme,
        to=["ann@example.org"],
        cc=["cc@example.org"],
        bcc=["hidden@example.org"],
        subject="Quarterly <report>",
        text="Hello <script>alert(1)</script> & goodbye",
        reply_to="replies@acme.example.com",
        attachments=[outbox.Attachment("report.pdf", "application/pdf", b"%" * 1234)],
    )
    message = stored(sent.id)
    message.status = "sent"
    message.attempts = 2
    message.recipient_results = {
        "ann@example.org": {"status": "sent", "code": 250, "reply": "2.0.0 Ok: queued as A1"},
        "cc@example.org": {"status": "failed", "code": 550, "reply": "5.1.1 No such user"},
    }
    db.session.add_all(
        [
            OutboxAttempt(
                message_id=sent.id,
                server="127.0.0.1:2525",
                status="deferred",
                reply="451 4.3.0 Try later",
                at=BASE,
            ),
            OutboxAttempt(
                message_id=sent.id,
                server="127.0.0.1:2525",
                status="sent",
                reply="250 2.0.0 Ok: queued as A1",
                at=BASE + timedelta(minutes=5),
            ),
        ]
    )
    db.session.commit()
    page = as_acme.get(f"/mail/{sent.id}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "mail@acme.example.com",  # From
        "ann@example.org",
        "cc@example.org",
        "replies@acme.example.com",
        "Quarterly &lt;report&gt;",
        html.escape(message.message_id),
        "Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; goodbye",
        "report.pdf",
        "application/pdf",
        "1.2 KB",  # 1234 bytes, for people
        "451 4.3.0 Try later",
        '<time datetime="2026-03-01T12:05:00Z" title="2026-03-01 12:05:00 UTC" data-local>',
        "5.1.1 No such user",
    ):
        assert expected in text, expected
    assert "<script>alert(1)" not in text
    headers = text[text.index('id="mail-headers"') : text.index('id="mail-recipients"')]
    for name in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID"):
        assert f"<dt>{name}</dt>" in headers
    assert "Bcc" not in headers and "hidden@example.org" not in headers


def test_detail_never_shows_a_bcc_header_even_if_the_raw_mail_has_one(as_acme, people):
    raw = raw_mail("Hidden copy", ["to@example.org"], Bcc="secret@example.org")
    mine = add_mail(
        people.acme,
        "Hidden copy",
        raw=raw,
    )
    copy = add_mail(
        people.acme,
        "Hidden copy",
        raw=raw_mail("Hidden copy", ["x@example.org"]),
        resend_of_id=mine.id,
    )
    page = as_acme.get(f"/mail/{mine.id}").text
    assert "secret@example.org" not in page and "Bcc" not in page
    assert f'href="/mail/{mine.id}"' in as_acme.get(f"/mail/{copy.id}").text


# --- resend ---


@pytest.fixture
def handed(monkeypatch) -> list[list]:
    """The lanes of each wake-up sent to the workers, recorded (Redis may be shared)."""
    calls = []
    real = handoff.wake

    def record(lanes, app=None):
        lanes = list(lanes)
        calls.append(lanes)
        return real(lanes, app)

    monkeypatch.setattr(handoff, "wake", record)
    return calls


def resend(browser, *ids):
    return browser.post("/mail/resend", {"ids": [str(i) for i in ids]}, htmx=True)


def test_resending_a_sent_mail_makes_a_new_one_that_arrives(as_acme, people, server, handed):
    configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
    original = outbox.send(people.acme, to=["ann@example.org"], subject="Receipt", text="Thanks")
    delivery.deliver(original.id)
    assert stored(original.id).status == "sent"

    response = resend(as_acme, original.id)
    assert response.status_code == 200 and "1 mail queued again." in response.text
    copy = db.session.scalar(select(OutboxMessage).where(OutboxMessage.resend_of_id == original.id))
    db.session.commit()
    assert copy.status == "queued" and copy.recipients == ["ann@example.org"]
    assert copy.message_id != original.message_id and copy.message_id.endswith("@acme.example.com>")
    assert f'id="mail-row-{copy.id}"' in response.text  # the new row is on the first page
    lane = stored(original.id).lane
    assert handed == [[lane], [lane]] and copy.lane == lane  # the send, then the resend

    delivery.deliver(copy.id)
    assert stored(copy.id).status == "sent" and stored(original.id).status == "sent"
    first, second = server.handler.messages
    arrived = email.message_from_bytes(second.data, policy=policy.default)
    assert arrived["Message-ID"] == copy.message_id
    assert arrived["Subject"] == "Receipt" and arrived.get_content().strip() == "Thanks"
    assert second.rcpt_tos == ["ann@example.org"]


def test_resending_a_failed_mail_requeues_the_same_row_and_delivers_it(as_acme, people, server):
    configure(people.acme, port=server.port)
    failed = outbox.send(
        people.acme, to=["a@example.org", "b@example.org"], subject="Retry me", text="x"
    )
    row = stored(failed.id)
    row.status, row.attempts, row.last_reply = "failed", 1, "550 5.1.1 No such user"
    row.recipient_results = {
        "a@example.org": {"status": "sent", "code": 250, "reply": "ok"},
        "b@example.org": {"status": "failed", "code": 550, "reply": "5.1.1 No such user"},
    }
    db.session.commit()

    assert "1 mail queued again." in resend(as_acme, failed.id).text
    requeued = stored(failed.id)
    assert requeued.status == "queued" and requeued.next_attempt_at is None
    assert set(requeued.recipient_results) == {"a@example.org"}  # b is tried again
    assert db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.id != failed.id)) is None

    delivery.deliver(failed.id)
    assert stored(failed.id).status == "sent"
    (arrived,) = server.handler.messages
    assert arrived.rcpt_tos == ["b@example.org"]


def test_resending_a_deferred_mail_queues_it_now(as_acme, people, handed):
    later = utcnow() + timedelta(hours=2)
    deferred = add_mail(
        people.acme,
        "Waiting",
        status="deferred",
        next_attempt_at=later,
        attempts=3,
        last_reply="451 busy",
    )
    assert "1 mail queued again." in resend(as_acme, deferred.id).text
    row = stored(deferred.id)
    assert row.status == "queued" and row.next_attempt_at is None and row.attempts == 3
    assert handed == [[stored(deferred.id).lane]]


@pytest.mark.parametrize("status", ["queued", "sending"])
def test_resending_a_mail_on_its_way_leaves_it_alone(as_acme, people, status, handed):
    busy = add_mail(people.acme, "Busy", status=status)
    response = resend(as_acme, busy.id)
    assert "0 mails queued again." in response.text
    assert f"Left alone, still queued or being sent: #{busy.id}." in response.text
    assert stored(busy.id).status == status
    assert handed == []


def test_resend_of_an_unknown_outcome_makes_a_copy(as_acme, people):
    unknown = add_mail(people.acme, "Maybe", status="unknown")
    resend(as_acme, unknown.id)
    copy = db.session.scalar(select(OutboxMessage).where(OutboxMessage.resend_of_id == unknown.id))
    assert copy is not None and copy.status == "queued"
    assert email.message_from_bytes(copy.raw)["Message-ID"] == copy.message_id


@pytest.mark.parametrize("ids", [[], ["abc"], ["1;2"]], ids=["none", "word", "junk"])
def test_resend_without_valid_ids_is_422(as_acme, people, ids):
    add_mail(people.acme, "Still listed")
    response = as_acme.post("/mail/resend", {"ids": ids, "company_page": people.acme.id}, htmx=True)
    assert response.status_code == 422 and "Select at least one mail." in response.text
    assert "Still listed" in response.text


def test_resend_without_htmx_redirects_to_the_log_with_a_notice(as_acme, people):
    mine = add_mail(people.acme, "Plain form", status="failed")
    response = as_acme.post("/mail/resend", {"ids": str(mine.id), "company_page": people.acme.id})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/companies/{people.acme.id}/mail")
    assert "1 mail queued again." in as_acme.get(response.headers["Location"]).text


# --- live rows ---


def test_the_page_polls_only_its_rows_that_are_not_final(as_acme, people):
    waiting = add_mail(people.acme, "Waiting", status="queued")
    done = add_mail(people.acme, "Done", status="sent")
    page = as_acme.get(f"/companies/{people.acme.id}/mail").text
    poller = re.search(r'<div id="maillog-poll"[^>]*>', page).group(0)
    assert f"/mail/rows?ids={waiting.id}" in poller and 'hx-trigger="load delay:2s"' in poller
    assert re.search(r"ids=([\d%C,]+)", poller).group(1) == str(waiting.id)
    assert done.id != waiting.id


def test_rows_endpoint_answers_only_the_users_rows_and_stops_when_final(as_acme, people):
    mine = add_mail(people.acme, "Mine", status="sending")
    theirs = add_mail(people.globex, "Theirs", status="sending")
    response = as_acme.get(f"/mail/rows?ids={mine.id},{theirs.id}", htmx=True)
    assert response.status_code == 200
    assert shown_ids(response.text) == [mine.id] and "Theirs" not in response.text
    assert 'hx-trigger="load delay:2s"' in response.text and 'hx-swap-oob="true"' in response.text

    row = stored(mine.id)
    row.status, row.last_reply = "sent", "250 2.0.0 Ok"
    db.session.commit()
    response = as_acme.get(f"/mail/rows?ids={mine.id}", htmx=True)
    assert shown_ids(response.text) == [mine.id] and ">sent<" in response.text
    assert "hx-trigger" not in response.text and "hx-get" not in response.text


@pytest.mark.parametrize("query", ["", "ids=", "ids=1,x", "ids=" + ",".join(["1"] * 101)])
def test_rows_endpoint_refuses_bad_ids(as_acme, people, query):
    assert as_acme.get(f"/mail/rows?{query}", htmx=True).status_code == 422


# --- the detail as a reader sees it: HTML preview, attachments, resends ---

SCRIPTED = (
    '<html><head></head><body><p id="probe">Quarterly</p><script>alert(1)</script></body></html>'
)


def test_the_html_part_is_previewed_in_a_sandboxed_frame_of_its_own(as_acme, people):
    configure(people.acme, port=2525, sender_address="mail@acme.example.com")
    sent = outbox.send(people.acme, to=["ann@example.org"], subject="Report", html=SCRIPTED)
    page = as_acme.get(f"/mail/{sent.id}").text
    frame = re.search(r'<iframe[^>]*class="mail-html"[^>]*>', page).group()
    sandbox = re.search(r'sandbox="([^"]*)"', frame).group(1)
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    assert f'src="/mail/{sent.id}/html"' in frame
    preview = as_acme.get(f"/mail/{sent.id}/html")
    assert preview.status_code == 200 and '<p id="probe">Quarterly</p>' in preview.text
    assert preview.headers["Content-Security-Policy"].startswith("sandbox ")
    assert "default-src 'none'" in preview.headers["Content-Security-Policy"]


def test_a_mail_without_html_has_no_preview(as_acme, people):
    mine = add_mail(people.acme, "Plain")
    assert "<iframe" not in as_acme.get(f"/mail/{mine.id}").text
    assert as_acme.get(f"/mail/{mine.id}/html").status_code == 404


def test_another_companys_preview_and_attachments_answer_404(as_acme, people):
    configure(people.globex, port=2525, sender_address="mail@globex.example.com")
    theirs = outbox.send(
        people.globex,
        to=["ann@example.org"],
        subject="Theirs",
        html="<p>Secret plans</p>",
        attachments=[outbox.Attachment("plans.pdf", "application/pdf", b"%PDF-plans")],
    )
    for path in (f"/mail/{theirs.id}/html", f"/mail/{theirs.id}/attachments/1"):
        response = as_acme.get(path)
        assert response.status_code == 404 and b"plans" not in response.data


def test_an_attachment_downloads_with_its_bytes(as_acme, people):
    configure(people.acme, port=2525, sender_address="mail@acme.example.com")
    data = bytes(range(256)) * 4
    sent = outbox.send(
        people.acme,
        to=["ann@example.org"],
        subject="Invoice",
        text="Attached.",
        attachments=[outbox.Attachment("invoice.pdf", "application/pdf", data)],
    )
    page = as_acme.get(f"/mail/{sent.id}").text
    assert f'href="/mail/{sent.id}/attachments/1" download>invoice.pdf</a>' in page
    assert "1.0 KB" in page
    download = as_acme.get(f"/mail/{sent.id}/attachments/1")
    assert download.status_code == 200 and download.data == data
    assert download.headers["Content-Disposition"] == "attachment; filename=invoice.pdf"
    assert as_acme.get(f"/mail/{sent.id}/attachments/2").status_code == 404


def test_a_resent_mail_and_its_original_link_to_each_other(as_acme, people, handed):
    original = add_mail(people.acme, "Receipt", status="sent")
    response = resend(as_acme, original.id)
    copy = db.session.scalar(select(OutboxMessage).where(OutboxMessage.resend_of_id == original.id))
    db.session.commit()
    assert f"#{original.id} resent as #{copy.id}." in response.text
    row = response.text[response.text.index(f'id="mail-row-{copy.id}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="/mail/{original.id}">resend of #{original.id}</a>' in row
    shown_copy = as_acme.get(f"/mail/{copy.id}").text
    assert (
        f'<dt>Resend of</dt><dd><a href="/mail/{original.id}">mail #{original.id}</a>' in shown_copy
    )
    shown_original = as_acme.get(f"/mail/{original.id}").text
    assert "<dt>Resent as</dt>" in shown_original
    assert f'<a href="/mail/{copy.id}">mail #{copy.id}</a>' in shown_original


def test_recipients_in_the_list_wrap_between_addresses_only(as_acme, people):
    add_mail(people.acme, "Many", to=("first.person@example.org", "second.person@example.org"))
    page = as_acme.get(f"/companies/{people.acme.id}/mail").text
    assert (
        '<span class="address">first.person@example.org</span>, '
        '<span class="address">second.person@example.org</span>'
    ) in page


# --- in the reader's language ---

DEC_4 = datetime(2026, 12, 4, 9, 30, 5, tzinfo=UTC)
IN_LANGUAGE = {
    "pt_BR": {
        "title": "Acme Ltd · Registro de e-mails",
        "headings": ["<th>Na fila desde</th>", "<th>Assunto</th>", "<th>Tentativas</th>"],
        "sent": "enviado",
        "failed": "falhou",
        "date": "4 de dez. de 2026 09:30:05 UTC",
        "detail": ["<h2>Tentativas de entrega</h2>", "<dt>Remetente do envelope</dt>"],
        "status": "<dt>Status</dt>",
        "bytes": r"\d+ bytes",
        "back": "← Registro de e-mails de Acme Ltd",
    },
    "cs": {
        "title": "Acme Ltd · Protokol e-mailů",
        "headings": ["<th>Zařazeno do fronty</th>", "<th>Předmět</th>", "<th>Pokusy</th>"],
        "sent": "odesláno",
        "failed": "selhalo",
        "date": "4. 12. 2026 9:30:05 UTC",
        "detail": ["<h2>Pokusy o doručení</h2>", "<dt>Odesílatel obálky</dt>"],
        "status": "<dt>Stav</dt>",
        "bytes": r"\d+ bajtů",
        "back": "← Protokol e-mailů společnosti Acme Ltd",
    },
}


@pytest.fixture(params=sorted(IN_LANGUAGE))
def speaking_acme(request, as_acme, people):
    """Acme's admin, who chose one of the portal's languages; what the pages should say."""
    people.acme_admin.language = request.param
    db.session.commit()
    return as_acme, IN_LANGUAGE[request.param]


def test_the_list_is_written_in_the_readers_language_its_filter_values_unchanged(
    speaking_acme, people
):
    client, words = speaking_acme
    mail = add_mail(people.acme, "Fatura", status="sent", created_at=DEC_4, attempts=1)
    page = client.get(f"/companies/{people.acme.id}/mail?status=sent").text
    assert f"<title>{words['title']}" in page
    assert all(heading in page for heading in words["headings"])
    assert f'<option value="sent" selected>{words["sent"]}</option>' in page
    assert f'<option value="failed">{words["failed"]}</option>' in page
    row = re.search(rf'<tr id="mail-row-{mail.id}".*?</tr>', page, re.S).group(0)
    assert f'<span class="status status-sent">{words["sent"]}</span>' in row
    assert (
        '<time datetime="2026-12-04T09:30:05Z" title="2026-12-04 09:30:05 UTC" data-local>'
        f"{words['date']}</time>"
    ) in row


def test_the_detail_is_written_in_the_readers_language(speaking_acme, people):
    client, words = speaking_acme
    mail = add_mail(people.acme, "Fatura", status="failed", created_at=DEC_4, attempts=1)
    page = client.get(f"/mail/{mail.id}").text
    assert all(label in page for label in words["detail"]) and words["back"] in page
    assert (
        f'{words["status"]}<dd><span class="status status-failed">{words["failed"]}</span>' in page
    )
    assert f"data-local>{words['date']}</time>" in page
    assert re.search(rf"<dd>{words['bytes']}</dd>", page)


def test_a_resend_notice_is_written_in_the_readers_language(as_acme, people):
    people.acme_admin.language = "cs"
    db.session.commit()
    busy = add_mail(people.acme, status="queued")
    notice = resend(as_acme, busy.id).text
    assert (
        "0 e-mailů bylo znovu zařazeno do fronty. "
        f"Ponechány beze změny, stále ve frontě nebo se odesílají: #{busy.id}."
    ) in notice
    refused = as_acme.post("/mail/resend", {"ids": ""}, htmx=True)
    assert refused.status_code == 422 and "Vyberte alespoň jeden e-mail." in refused.text
