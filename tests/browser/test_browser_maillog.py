"""Browser tests of the mail log: live rows, select all, local times, a resend and its original."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from support.browser import (
    PHONE,
    assert_not_reloaded,
    log_in,
    mark_window,
    shot,
    shot_phone,
    shot_whole,
)
from support.factories import configure, row
from support.smtp_servers import smtp_server

from portal import delivery, outbox
from portal.extensions import db
from portal.models import OutboxMessage, utcnow

pytestmark = pytest.mark.browser
REPORT_HTML = """<html><head><style>h1 { color: #1f5fbf; }</style></head><body>
<h1>Quarterly report</h1><p id="probe">No script ran.</p>
<script>document.getElementById("probe").textContent = "ran";</script></body></html>"""


def add_mail(company, subject: str, *, status: str = "sent", created_at=None) -> OutboxMessage:
    """A mail row as delivery leaves it, without sending anything; commits."""
    raw = (
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\nHi\r\n"
    )
    message = OutboxMessage(
        company_id=company.id,
        message_id=f"<{subject.replace(' ', '.')}@example.com>",
        status=status,
        envelope_from="noreply@example.com",
        recipients=["rcpt@example.org"],
        subject=subject,
        raw=raw.encode(),
        size=len(raw),
        created_at=created_at or utcnow(),
    )
    db.session.add(message)
    db.session.commit()
    return message


def test_a_queued_mail_turns_sent_in_the_open_log(page, people):
    with smtp_server() as server:
        configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
        queued = outbox.send(
            people.acme, to=["ann@example.org"], subject="Welcome aboard", text="Hello Ann"
        )
        log_in(page, people.acme_admin.email)
        page.goto(f"/companies/{people.acme.id}/mail")
        row = page.locator(f"#mail-row-{queued.id}")
        expect(row).to_contain_text("Welcome aboard")
        expect(row.locator(".status")).to_have_text("queued")
        mark_window(page)
        row.get_by_role("checkbox").check()  # a choice in progress survives the polling

        delivery.deliver(queued.id)

        expect(row.locator(".status")).to_have_text("sent", timeout=10_000)
        expect(row).to_contain_text("queued as")
        expect(row.get_by_role("checkbox")).to_be_checked()
        expect(page.locator("#maillog-poll[hx-get]")).to_have_count(0)  # polling stopped
        assert_not_reloaded(page)
        assert len(server.handler.messages) == 1
        shot(page, "maillog")


@pytest.fixture
def in_paris(chromium, live_server) -> Iterator[Page]:
    """A browser whose clock is in Paris (UTC+1 in March)."""
    context = chromium.new_context(base_url=live_server, timezone_id="Europe/Paris")
    yield context.new_page()
    context.close()


def test_select_all_picks_every_row_for_the_bulk_resend(page, people):
    mails = [add_mail(people.acme, f"Invoice {i}", status="failed") for i in range(3)]
    log_in(page, people.acme_admin.email)
    page.goto(f"/companies/{people.acme.id}/mail")
    select_all = page.get_by_role("checkbox", name="Select all mails on this page")
    boxes = page.locator("input[name=ids]")
    expect(boxes).to_have_count(3)
    select_all.check()
    for i in range(3):
        expect(boxes.nth(i)).to_be_checked()
    boxes.nth(0).uncheck()
    expect(select_all).not_to_be_checked()
    assert page.evaluate("document.querySelector('input[data-select-all]').indeterminate")
    select_all.check()
    page.get_by_role("button", name="Resend selected").click()
    expect(page.locator("#maillog-rows .notice")).to_contain_text("3 mails queued again.")
    assert {row(m).status for m in mails} == {"queued"}


def test_times_show_in_the_readers_zone_with_utc_on_hover(in_paris, people):
    page = in_paris
    mine = add_mail(people.acme, "Dated", created_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC))
    log_in(page, people.acme_admin.email)
    page.goto(f"/companies/{people.acme.id}/mail")
    shown = page.locator(f"#mail-row-{mine.id} time")
    expect(shown).to_have_text(re.compile(r"^Mar 1, 2026, 1:00:05\sPM (GMT\+1|CET)$"))
    expect(shown).to_have_attribute("title", "2026-03-01 12:00:05 UTC")
    expect(shown).to_have_attribute("datetime", "2026-03-01T12:00:05Z")


def test_times_in_the_readers_zone_are_written_in_the_pages_language(in_paris, people):
    page = in_paris
    mine = add_mail(people.acme, "Dated", created_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC))
    log_in(page, people.acme_admin.email)
    people.acme_admin.language = "pt_BR"
    db.session.commit()
    page.goto(f"/companies/{people.acme.id}/mail")
    shown = page.locator(f"#mail-row-{mine.id} time")
    expect(shown).to_have_text(re.compile(r"^1 de mar\. de 2026,? 13:00:05 (GMT\+1|CET)$"))


def test_the_detail_of_a_resent_mail_links_its_original_and_shows_its_html(page, people):
    configure(people.acme, port=2525, sender_address="mail@acme.example.com")
    original = outbox.send(
        people.acme,
        to=["first.recipient@example.org", "second.recipient@example.org"],
        subject="Quarterly report",
        text="The report is online: https://example.org/reports/2026-q1",
        html=REPORT_HTML,
        attachments=[outbox.Attachment("report.pdf", "application/pdf", b"%PDF" * 400)],
    )
    sent = row(original)
    sent.status = "sent"
    db.session.commit()
    log_in(page, people.acme_admin.email)
    page.goto(f"/mail/{original.id}")
    page.get_by_role("button", name="Resend").click()
    expect(page.locator("#flash")).to_contain_text(f"#{original.id} resent as #")
    copy_row = page.locator(".mail-row").first
    expect(copy_row.get_by_role("link", name=f"resend of #{original.id}")).to_be_visible()
    copy_row.get_by_role("link", name="Quarterly report").click()
    summary = page.locator("#mail-summary")
    expect(
        summary.locator("dd", has=page.get_by_role("link", name=f"mail #{original.id}"))
    ).to_have_count(1)
    expect(summary).to_contain_text(re.compile(r"Size\s*3\.\d KB"))
    frame = page.frame_locator("#mail-html iframe")
    expect(frame.get_by_role("heading", name="Quarterly report")).to_be_visible()
    expect(frame.locator("#probe")).to_have_text("No script ran.")
    assert "allow-scripts" not in page.locator("#mail-html iframe").get_attribute("sandbox")
    expect(page.locator("#mail-attachments")).to_contain_text("1.6 KB")
    expect(page.locator("#mail-body a")).to_have_attribute(
        "href", "https://example.org/reports/2026-q1"
    )
    shot_phone(page, "maillog-detail-phone")
    shot_whole(page, "maillog-detail-phone", PHONE["width"])
    shot_whole(page, "maillog-detail", 1280)
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_role("link", name=f"mail #{original.id}").click()
    expect(page.locator("#mail-summary")).to_contain_text("Resent as")
    page.set_viewport_size({"width": 1280, "height": 900})
    shot_whole(page, "maillog-detail-original", 1280)
    page.get_by_role("link", name=re.compile("Mail log")).first.click()
    shot(page, "maillog-resent")
    shot_phone(page, "maillog-resent-phone")
