"""The queue dashboard: counts per company and server, their links, the chart, workers, access."""

import html
import re
import time
from datetime import UTC, timedelta

import pytest
from babel.dates import format_time
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from support.factories import mail_config

from portal import crypto, redis_client
from portal.delivery import lanes
from portal.extensions import db
from portal.models import OutboxMessage, utcnow
from portal.outbox import handoff, processes
from portal.settings.versioned import resolve_current

ROW_ID = re.compile(r'<tr id="mail-row-(\d+)"')
TAG = re.compile(r"<[^>]+>")
SMTP_PASSWORD = "s3cret-smtp-pass"


def mail(company, status: str, subject: str, **fields) -> OutboxMessage:
    """A mail row in `status` on the lane the company's settings make now; commits."""
    raw = f"Subject: {subject}\r\n\r\nBody\r\n".encode()
    message = OutboxMessage(
        company_id=company.id if company is not None else None,
        message_id=f"<{subject.replace(' ', '-')}-{time.monotonic_ns()}@example.com>",
        status=status,
        lane=fields.pop("lane", resolve_current(company).lane),
        envelope_from="noreply@example.com",
        recipients=["rcpt@example.org"],
        subject=subject,
        raw=raw,
        size=len(raw),
        recipient_results={},
        **fields,
    )
    db.session.add(message)
    db.session.commit()
    return message


def texts(fragment: str) -> list[str]:
    """The words of an HTML fragment as a reader sees them, tags dropped."""
    return html.unescape(TAG.sub(" ", fragment)).split()


def row_of(page: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row {row_id}"
    return found.group(1)


def links_of(fragment: str) -> dict[str, tuple[str, str]]:
    """Each linked count by its column: (the count, the link's address)."""
    cells = re.findall(r'<td data-label="([^"]+)"><a href="([^"]+)"[^>]*>(\d+)</a>', fragment)
    return {label: (count, html.unescape(href)) for label, href, count in cells}


def server_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="server-counts">(.*?)</tr>', page, re.S)


@pytest.fixture
def settings(app, people):
    """Global settings on one server; Acme on its own, with a saved password."""
    mail_config(host="smtp.example.com", port=587, security="starttls", sender_address="a@b.c")
    mail_config(
        people.acme,
        host="smtp.acme.example.com",
        port=465,
        security="ssl",
        auth_enabled=True,
        username="acme-mailer",
        password_encrypted=crypto.encrypt(SMTP_PASSWORD),
        sender_address="mail@acme.example.com",
        max_sessions=3,
    )
    people.acme.use_own_mail_settings = True
    db.session.commit()


@pytest.fixture
def mails(settings, people) -> dict[str, list[OutboxMessage]]:
    """Queued, deferred and failed mail of two companies and of none; one sent a minute ago."""
    soon = utcnow() + timedelta(minutes=5)
    return {
        "acme queued": [mail(people.acme, "queued", f"Acme queued {i}") for i in range(2)],
        "acme failed": [mail(people.acme, "failed", "Acme failed")],
        "acme sent": [mail(people.acme, "sent", "Acme sent", sent_at=utcnow())],
        "globex queued": [mail(people.globex, "queued", "Globex queued")],
        "globex deferred": [
            mail(people.globex, "deferred", f"Globex deferred {i}", next_attempt_at=soon)
            for i in range(3)
        ],
        "global failed": [mail(None, "failed", "Global failed")],
    }


def test_counts_per_company_match_the_mails_in_each_state(as_superuser, people, mails):
    page = as_superuser.get("/dashboard")
    assert page.status_code == 200
    # Company, queued, sending, deferred, failed, sent in the last hour, then the oldest's age.
    assert texts(row_of(page.text, f"company-counts-{people.acme.id}"))[:7] == [
        "Acme", "Ltd", "2", "0", "0", "1", "1",
    ]  # fmt: skip
    assert texts(row_of(page.text, f"company-counts-{people.globex.id}"))[:7] == [
        "Globex", "Corp", "1", "0", "3", "0", "0",
    ]  # fmt: skip
    assert texts(row_of(page.text, "company-counts-global"))[:6] == [
        "Global", "0", "0", "0", "1", "0",
    ]  # fmt: skip


def test_the_oldest_queued_mail_shows_its_age(as_superuser, people, settings):
    mail(people.acme, "queued", "Waiting", created_at=utcnow() - timedelta(minutes=7, seconds=5))
    mail(people.acme, "queued", "Newer", created_at=utcnow() - timedelta(seconds=30))
    row = texts(row_of(as_superuser.get("/dashboard").text, f"company-counts-{people.acme.id}"))
    assert row[-2:] == ["7", "min"]


@pytest.mark.parametrize(
    ("who", "status", "expected"),
    [
        ("acme", "queued", "acme queued"),
        ("acme", "failed", "acme failed"),
        ("globex", "deferred", "globex deferred"),
        ("globex", "queued", "globex queued"),
        ("global", "failed", "global failed"),
    ],
)
def test_a_count_links_to_the_mail_log_showing_exactly_those_mails(
    as_superuser, people, mails, who, status, expected
):
    company_id = {"acme": people.acme.id, "globex": people.globex.id}.get(who, "global")
    row = row_of(as_superuser.get("/dashboard").text, f"company-counts-{company_id}")
    count, link = links_of(row)[status.capitalize()]
    assert count == str(len(mails[expected])) and f"status={status}" in link
    log = as_superuser.get(link)
    assert log.status_code == 200
    assert sorted(int(i) for i in ROW_ID.findall(log.text)) == [m.id for m in mails[expected]]


def test_servers_are_named_by_host_and_port_never_with_their_credentials(
    as_superuser, people, mails
):
    page = as_superuser.get("/dashboard").text
    servers = page[page.index('id="dashboard-servers"') : page.index('id="dashboard-workers"')]
    rows = [texts(row) for row in server_rows(servers)]
    # Server, whose settings, queued, sending, deferred, failed, sent; then the oldest's age
    # and the sessions held of the lane's parallel connections.
    assert [r[:8] for r in rows] == [
        ["smtp.acme.example.com:465", "Acme", "Ltd", "2", "0", "0", "1", "1"],
        ["smtp.example.com:587", "Global", "settings", "1", "0", "3", "1", "0"],
    ]
    assert rows[0][-3:] == ["0", "of", "3"] and rows[1][-3:] == ["0", "of", "2"]
    for secret in (SMTP_PASSWORD, "acme-mailer"):
        assert secret not in page


def test_a_server_count_links_to_that_servers_mail_alone(as_superuser, people, mails):
    page = as_superuser.get("/dashboard").text
    count, link = links_of(server_rows(page)[1])["Deferred"]  # the global lane's: Globex's
    assert count == "3"
    log = as_superuser.get(link)
    assert log.status_code == 200
    assert sorted(int(i) for i in ROW_ID.findall(log.text)) == [
        m.id for m in mails["globex deferred"]
    ]
    assert "Server: smtp.example.com:587 (Global settings)" in " ".join(texts(log.text))
    queued = as_superuser.get(link.replace("status=deferred", "status=queued"))
    assert [int(i) for i in ROW_ID.findall(queued.text)] == [mails["globex queued"][0].id]


def test_a_broken_server_link_answers_422_with_the_reason(as_superuser, people, mails):
    log = as_superuser.get("/mail?lane=not-a-lane", htmx=True)
    assert log.status_code == 422 and "This server link is broken" in log.text
    assert not ROW_ID.findall(log.text)


def test_the_chart_has_a_bar_for_a_minute_in_which_mails_were_sent(as_superuser, people, settings):
    minute = (utcnow() - timedelta(minutes=5)).replace(second=10)
    for i in range(3):
        mail(people.acme, "sent", f"Sent {i}", sent_at=minute + timedelta(seconds=i))
    mail(people.acme, "sent", "Too old", sent_at=utcnow() - timedelta(minutes=70))
    page = as_superuser.get("/dashboard").text
    chart = page[page.index("<svg") : page.index("</svg>")]
    assert chart.count('<rect class="bar"') == 60
    at = format_time(minute, "short", tzinfo=UTC, locale="en")  # English by default: 2:05 PM
    assert f"<title>{at} UTC: 3 sent</title>" in chart
    assert '<title id="sent-chart-title">Mails sent per minute, last hour</title>' in chart
    assert "3 mails sent from" in chart and f"the most in one minute: 3, at {at}" in chart
    numbers = page[page.index('class="chart-numbers"') :]
    assert re.search(
        rf'<td><time datetime="{minute:%Y-%m-%dT%H:%M}[^"]*">{at}</time></td><td>3</td>', numbers
    )


def test_an_empty_hour_draws_empty_bars(as_superuser, people):
    page = as_superuser.get("/dashboard").text
    assert page.count('height="0.0"><title>') == 60
    assert "0 mails sent from" in page and "None in the last hour." in page


@pytest.mark.parametrize("url", ["/dashboard"])
def test_a_company_admin_cannot_see_the_dashboard(as_acme, people, url):
    assert as_acme.get(url).status_code == 403
    assert as_acme.get(url, htmx=True).status_code == 403


def test_anonymous_is_sent_to_log_in(browser, people):
    response = browser.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_only_the_superusers_navigation_links_the_dashboard(browser, people):
    browser.login(people.superuser.email)
    assert 'href="/dashboard">Queue</a>' in browser.get("/mail").text
    browser.login(people.acme_admin.email)
    assert "/dashboard" not in browser.get(f"/companies/{people.acme.id}/email").text


def test_the_polling_partial_answers_alone_for_htmx(as_superuser, people, mails):
    assert '<div id="dashboard-live"' in as_superuser.get("/dashboard").text
    part = as_superuser.get("/dashboard", htmx=True)
    assert part.status_code == 200 and "HX-Request" in part.headers["Vary"]
    assert part.text.lstrip().startswith('<div id="dashboard-live"') and "<html" not in part.text
    assert 'hx-trigger="every 5s, visibilitychange from:document"' in part.text
    assert f"company-counts-{people.acme.id}" in part.text


def test_live_workers_and_their_current_job_are_listed(as_superuser, people):
    connection = redis_client.connection()
    worker = SimpleWorker(
        [handoff.mail_queue()], connection=connection, serializer=JSONSerializer, name="worker-a"
    )
    worker.register_birth()
    try:
        section = as_superuser.get("/dashboard").text.split('id="dashboard-workers"')[1]
        assert "worker-a" in section and worker.hostname in section
        assert "No worker is running" not in section
    finally:
        worker.register_death()
    section = as_superuser.get("/dashboard").text.split('id="dashboard-workers"')[1]
    assert "worker-a" not in section and "No worker is running" in section


def test_the_sweepers_last_run_is_shown_or_unknown(as_superuser, people):
    page = as_superuser.get("/dashboard").text
    assert "Sweeper's last run:</strong>\n      unknown." in page
    at = time.time() - 42
    redis_client.connection().hset(
        processes.SWEEPER_KEY,
        mapping={"host": "host-a:4026531836:42", "at": repr(at), "released": 3},
    )
    sweeper = " ".join(
        texts(as_superuser.get("/dashboard").text.split('id="dashboard-sweeper"')[1])
    )
    assert "ago" in sweeper and "by host-a:4026531836:42; 3 mails whose lease ran out" in sweeper


def test_live_sessions_show_their_lanes_server_and_worker(as_superuser, people, settings):
    lane = resolve_current(people.acme).lane
    mail(people.acme, "sending", "On the wire")
    assert lanes.open_session("t" * 32, lane, 3, "host-b:4026531836:77", 60)
    page = as_superuser.get("/dashboard").text
    sessions = " ".join(texts(page.split('id="dashboard-sessions"')[1]))
    assert "smtp.acme.example.com:465 Acme Ltd host-b:4026531836:77" in sessions
    assert texts(server_rows(page)[0])[-3:] == ["1", "of", "3"]
