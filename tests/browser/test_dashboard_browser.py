"""Browser test of the queue dashboard: it fits a desktop and a phone, and updates itself."""

import time
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from support.browser import PHONE, assert_not_reloaded, log_in, mark_window, shot
from support.factories import mail_config

from portal import redis_client
from portal.delivery import lanes
from portal.extensions import db
from portal.models import OutboxMessage, utcnow
from portal.outbox import handoff
from portal.settings.versioned import resolve_current

pytestmark = pytest.mark.browser
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"


def mail(company, status: str, subject: str, **fields) -> None:
    raw = f"Subject: {subject}\r\n\r\nBody\r\n".encode()
    db.session.add(
        OutboxMessage(
            company_id=company.id if company is not None else None,
            message_id=f"<{time.monotonic_ns()}@example.com>",
            status=status,
            lane=resolve_current(company).lane,
            envelope_from="noreply@example.com",
            recipients=["rcpt@example.org"],
            subject=subject,
            raw=raw,
            size=len(raw),
            recipient_results={},
            **fields,
        )
    )


@pytest.fixture
def busy(app, people):
    """Two servers with mail in every state, an hour of sent mail, a worker and a session."""
    mail_config(host="smtp.example.com", port=587, security="starttls", sender_address="a@b.c")
    mail_config(people.acme, host="smtp.eu-west-1.mail.acme-industries.example.com", port=465)
    people.acme.use_own_mail_settings = True
    now = utcnow()
    for i in range(4):
        mail(people.acme, "queued", f"Queued {i}", created_at=now - timedelta(minutes=3 + i))
    for i in range(3):
        mail(people.globex, "deferred", f"Deferred {i}", next_attempt_at=now + timedelta(minutes=2))
    mail(None, "failed", "Failed")
    for minute in range(0, 60, 3):
        for i in range(minute % 7 + 1):
            mail(
                people.globex, "sent", f"Sent {minute}-{i}", sent_at=now - timedelta(minutes=minute)
            )
    db.session.commit()
    lanes.open_session(
        "s" * 32, resolve_current(people.acme).lane, 2, "mailhost-1:4026531836:4242", 60
    )
    connection = redis_client.connection()
    connection.hset(
        "portal:sweeper",
        mapping={"host": "mailhost-1:4026531836:4242", "at": repr(time.time() - 12), "released": 0},
    )
    worker = SimpleWorker(
        [handoff.mail_queue()],
        connection=connection,
        serializer=JSONSerializer,
        name="mailhost-1.4242",
    )
    worker.register_birth()
    yield
    worker.register_death()


def open_dashboard(page: Page, people) -> None:
    log_in(page, people.superuser.email)
    page.get_by_role("link", name="Queue", exact=True).click()
    expect(page.get_by_role("heading", name="Queue dashboard")).to_be_visible()


def test_the_dashboard_fits_a_desktop_and_a_phone(page, people, busy):
    page.set_viewport_size({"width": 1280, "height": 900})
    open_dashboard(page, people)
    expect(page.locator("svg.chart rect.bar")).to_have_count(60)
    expect(page.locator("#dashboard-servers")).to_contain_text("smtp.example.com:587")
    expect(page.locator("#dashboard-workers")).to_contain_text("mailhost-1.4242")
    assert page.evaluate(FITS)
    shot(page, "dashboard-1280")
    page.set_viewport_size(PHONE)
    assert page.evaluate(FITS), "the dashboard scrolls sideways on a phone"
    shot(page, "dashboard-390")


def test_the_open_dashboard_shows_new_mail_without_a_reload(page, people, busy):
    open_dashboard(page, people)
    expect(page.locator("#total-queued")).to_have_text("4")
    mark_window(page)
    mail(people.acme, "queued", "One more")
    db.session.commit()
    expect(page.locator("#total-queued")).to_have_text("5", timeout=15_000)
    assert_not_reloaded(page)


HIDE = """() => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  window.__triggered = 0;
  window.__sent = 0;
  // On <body>: it hears a poll's request before the document-wide listener cancels it.
  document.body.addEventListener("htmx:beforeRequest", () => { window.__triggered += 1; });
  document.body.addEventListener("htmx:beforeSend", () => { window.__sent += 1; });
}"""
SHOW = """() => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_hidden_tab_stops_polling_and_refreshes_when_shown(page, people, busy):
    open_dashboard(page, people)
    page.evaluate(HIDE)
    page.wait_for_function("() => window.__triggered >= 2", timeout=15_000)
    assert page.evaluate("window.__sent") == 0  # each poll was due, and none went out
    mail(people.acme, "queued", "While hidden")
    db.session.commit()
    page.evaluate(SHOW)
    expect(page.locator("#total-queued")).to_have_text("5")
