"""Accounts under attack: log-in back-off, one-time links kept out of the log, telling resets."""

import email
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, update
from support.factories import mail_config
from support.smtp_servers import smtp_server
from support.web import Browser

from portal import crypto, delivery, redis_client
from portal.app import create_app
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage, utcnow
from portal.outbox import handoff, system_mail
from portal.web.auth import MSG_BAD_LOGIN, MSG_RESET_SENT, UNKNOWN_ACCOUNT

ROOT = Path(__file__).resolve().parents[2]
WRONG = "not the password"
NEW_PASSWORD = "a long new passphrase"
PAUSED = "Too many failed log-ins for this account or from your network. Try again in"
LINK_PATH = "/set-password/"
LINK = re.compile(r"http://portal\.test(/set-password/[A-Za-z0-9_.\-]+)")
CSRF_VALUE = re.compile(r'("X-CSRFToken": "|name="csrf_token" value=")[^"]+')


def visitor(web, address: str = "192.0.2.10") -> Browser:
    """A browser of its own, coming from this client address."""
    client = web.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


def run_worker() -> None:
    """What the delivery worker would do with the jobs queued so far."""
    queue = handoff.mail_queue()
    connection = redis_client.connection()
    SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
    delivery.drain()


def forgot(browser: Browser, address: str):
    return browser.post("/forgot-password", {"email": address})


# --- log-in back-off ---------------------------------------------------------------------


def failed_logins() -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).where(AuditEntry.action == "login.failed")
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def test_the_sixth_wrong_password_is_refused_and_so_is_the_right_one_until_the_wait_passes(
    web, people
):
    web.config["LOGIN_BACKOFF_SECONDS"] = 1
    admin = people.acme_admin.email
    attacker = visitor(web)
    for _ in range(5):
        wrong = attacker.login(admin, WRONG)
        assert wrong.status_code == 422 and str(MSG_BAD_LOGIN) in wrong.text

    refused = attacker.login(admin, WRONG)
    assert refused.status_code == 429
    assert f"{PAUSED} 1 minute." in refused.text and "<h1>Log in</h1>" in refused.text
    assert refused.headers["Retry-After"] == "1"
    owner = visitor(web, "198.51.100.20")
    assert owner.login(admin).status_code == 429  # the right password waits too
    assert owner.get("/").headers["Location"].startswith("/login")

    colleague = visitor(web)  # same client, another account: still fine
    assert colleague.login(people.globex_admin.email).status_code == 302

    time.sleep(1.2)
    landed = owner.login(admin)
    assert landed.status_code == 302
    assert landed.headers["Location"].endswith(f"/companies/{people.acme.id}/email")


def test_failed_logins_appear_in_the_history_without_the_typed_text(web, people):
    attacker = visitor(web, "203.0.113.5")
    for _ in range(5):
        attacker.login(people.acme_admin.email, WRONG)
    attacker.login("my password is hunter2", WRONG)

    entries = failed_logins()
    assert len(entries) == 6
    assert {e.company_id for e in entries[:5]} == {people.acme.id}
    assert entries[4].changes == {
        "account": people.acme_admin.email,
        "client": "203.0.113.5",
        "paused": "1 minute",
    }
    assert entries[5].company_id is None  # unknown addresses: the global history
    assert entries[5].changes["account"] == UNKNOWN_ACCOUNT
    assert "hunter2" not in json.dumps([e.changes for e in entries])

    admin = visitor(web, "198.51.100.30")
    admin.login(people.acme_admin.email, WRONG)  # waiting: refused, not another failure
    assert len(failed_logins()) == 6
    superuser = visitor(web, "198.51.100.31")
    superuser.login(people.superuser.email)
    page = superuser.get(f"/companies/{people.acme.id}/admins").text
    assert page.count("Log-in failed") == 5 and "203.0.113.5" in page
    assert "Log-ins paused for" in page


@pytest.mark.parametrize(
    ("backoff", "told", "kept"),
    [
        (60, "1 minutę", "1 minute"),
        (120, "2 minuty", "2 minutes"),
        (300, "5 minut", "5 minutes"),
        (1320, "22 minuty", "22 minutes"),
    ],
)
def test_the_pause_is_told_in_the_browsers_language_and_kept_in_english(
    web, people, backoff, told, kept
):
    web.config["LOGIN_BACKOFF_SECONDS"] = backoff
    attacker = visitor(web, "203.0.113.6")
    attacker.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pl"
    for _ in range(5):
        attacker.login(people.acme_admin.email, WRONG)
    refused = attacker.login(people.acme_admin.email, WRONG)
    assert refused.status_code == 429
    assert f"Spróbuj ponownie za {told}." in refused.text
    assert failed_logins()[4].changes["paused"] == kept  # a stored row stays in English


def test_only_failures_count_and_each_further_failure_doubles_the_wait(web, people):
    web.config["LOGIN_BACKOFF_SECONDS"] = 1
    admin = people.acme_admin.email
    for _ in range(4):
        assert visitor(web).login(admin, WRONG).status_code == 422
    assert visitor(web).login(admin).status_code == 302  # a success is given back
    assert visitor(web).login(admin, WRONG).status_code == 422  # the fifth failure
    first = visitor(web).login(admin)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"

    time.sleep(1.2)
    assert visitor(web).login(admin, WRONG).status_code == 422  # one try after the wait
    second = visitor(web).login(admin)
    assert second.status_code == 429 and second.headers["Retry-After"] == "2"


def test_failures_from_one_client_pause_it_for_every_account_but_not_other_clients(web, people):
    web.config["LOGIN_CLIENT_FAILURES"] = 3
    attacker = visitor(web, "203.0.113.9")
    for n in range(3):
        assert attacker.login(f"guess{n}@example.com", WRONG).status_code == 422
    refused = attacker.login(people.acme_admin.email)
    assert refused.status_code == 429 and PAUSED in refused.text
    assert visitor(web, "198.51.100.40").login(people.acme_admin.email).status_code == 302


def test_with_redis_down_log_ins_still_work_and_failures_are_still_audited(
    app_config, people, caplog
):
    # Nothing listens on port 1: every Redis call fails at once, as with Redis stopped.
    served = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        with caplog.at_level(logging.WARNING, logger="portal.login_throttle"):
            wrong = visitor(served).login(people.acme_admin.email, "not the password")
            right = visitor(served).login(people.acme_admin.email)
        assert wrong.status_code == 422 and str(MSG_BAD_LOGIN) in wrong.text
        assert right.status_code == 302
        assert [e.changes["account"] for e in failed_logins()] == [people.acme_admin.email]
        assert "log-in tries not counted: Redis is unreachable" in caplog.text
    finally:
        with served.app_context():
            db.engine.dispose()


def test_tries_sent_at_once_get_no_more_guesses_than_the_limit(web, people):
    browsers = [visitor(web, f"198.51.100.{50 + n}") for n in range(8)]
    for browser in browsers:
        browser.csrf()
    start = threading.Barrier(len(browsers))
    statuses: list[int] = []
    admin = people.acme_admin.email

    def guess(browser: Browser) -> None:
        start.wait()
        statuses.append(browser.login(admin, WRONG).status_code)

    threads = [threading.Thread(target=guess, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(statuses) == {422: 5, 429: 3}
    assert len(failed_logins()) == 5


# --- one-time links ----------------------------------------------------------------------


@pytest.fixture
def server():
    with smtp_server() as running:
        yield running


def point_global_settings_at(port: int) -> None:
    mail_config(
        host="127.0.0.1",
        port=port,
        security="none",
        sender_address="noreply@example.com",
        sender_name="Portal",
        default_sender_enabled=True,
        timeout_seconds=5,
        egress_allowlist="127.0.0.1/32",
        egress_extra_ports=str(port),
    )


def arrived(server, to: str) -> EmailMessage:
    (data,) = [m.data for m in server.handler.messages if m.rcpt_tos == [to]]
    return email.message_from_bytes(data, policy=policy.default)


def link_in(message: EmailMessage) -> str:
    return LINK.search(message.get_body(preferencelist=("plain",)).get_content()).group(1)


def row_for(to: str) -> OutboxMessage:
    db.session.expire_all()
    # JSON has no equality in PostgreSQL: compare in Python.
    (row,) = [r for r in db.session.scalars(select(OutboxMessage)) if r.recipients == [to]]
    return row


@dataclass
class LinkMails:
    """Invitations and a reset in every state; the links, as the mails carry them."""

    paths: dict[str, str]  # recipient -> set-password path
    sent: list[str]  # recipients whose mail arrived
    deferred: str
    queued: str


def invite(superuser: Browser, company_id: int, address: str) -> str:
    """Invite an admin; the path of the link the superuser is shown once."""
    response = superuser.post(f"/companies/{company_id}/admins", {"email": address, "name": "N"})
    assert response.status_code == 200
    return LINK.search(response.text).group(1)


@pytest.fixture
def link_mails(app, web, people, server, as_superuser) -> LinkMails:
    point_global_settings_at(server.port)
    acme = people.acme.id
    paths = {"nina@example.org": invite(as_superuser, acme, "nina@example.org")}
    assert forgot(visitor(web), people.acme_admin.email).status_code == 200
    run_worker()  # the reset is looked up, then both mails are delivered
    paths[people.acme_admin.email] = link_in(arrived(server, people.acme_admin.email))
    assert link_in(arrived(server, "nina@example.org")) == paths["nina@example.org"]

    server.handler.data_reply = "451 4.3.0 Try again later"
    paths["omar@example.org"] = invite(as_superuser, acme, "omar@example.org")
    run_worker()
    server.handler.data_reply = None
    assert row_for("omar@example.org").status == "deferred"
    paths["pia@example.org"] = invite(as_superuser, acme, "pia@example.org")  # still queued
    sent = ["nina@example.org", people.acme_admin.email]
    return LinkMails(paths, sent, deferred="omar@example.org", queued="pia@example.org")


def shown_links(page: str, mails: LinkMails) -> list[str]:
    return [p for p in [LINK_PATH, *mails.paths.values()] if p in page]


def mail_log_pages(browser: Browser, log_url: str) -> list[str]:
    """The log, each mail's detail and the resend answers, as this user sees them."""
    listing = browser.get(log_url)
    assert listing.status_code == 200
    ids = [int(i) for i in re.findall(r'name="ids" value="(\d+)"', listing.text)]
    assert len(ids) == 4
    pages = [listing.text, browser.get(f"{log_url}?q=example.org", htmx=True).text]
    for message_id in ids:
        detail = browser.get(f"/mail/{message_id}")
        assert detail.status_code == 200
        assert "This mail carried a one-time link: only its headers are kept." in detail.text
        assert "<dt>To</dt>" in detail.text and "<dt>Subject</dt>" in detail.text
        assert ">Resend</button>" not in detail.text
        pages.append(detail.text)
    joined = ",".join(map(str, ids))
    pages.append(browser.get(f"/mail/rows?ids={joined}", htmx=True).text)
    resent = browser.post("/mail/resend", {"ids": joined}, htmx=True)
    assert resent.status_code == 200 and "never sent again" in resent.text
    pages.append(resent.text)
    return pages


@pytest.mark.parametrize("who", ["superuser", "acme_admin"])
def test_the_mail_log_shows_one_time_link_mails_by_their_headers_only(web, people, link_mails, who):
    browser = visitor(web, "198.51.100.60")
    browser.login(getattr(people, who).email)
    log_url = "/mail" if who == "superuser" else f"/companies/{people.acme.id}/mail"
    pages = mail_log_pages(browser, log_url)
    assert [shown_links(page, link_mails) for page in pages] == [[]] * len(pages)
    assert all(f"<dd>{address}</dd>" in "".join(pages) for address in link_mails.paths)
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 4  # no copy


def stored_texts():
    """Every value in every table as text; mails also decoded part by part."""
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            for value in row:
                if isinstance(value, bytes):
                    yield value.decode("latin-1")
                    parsed = BytesParser(policy=policy.default).parsebytes(value)
                    for part in parsed.walk():
                        if part.get_content_maintype() == "text":
                            yield part.get_payload(decode=True).decode("latin-1")
                elif value is not None:
                    yield json.dumps(value, default=str)


def database_files() -> list[Path]:
    if db.engine.dialect.name != "sqlite":
        return []
    path = Path(db.engine.url.database)
    return [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]


def test_no_stored_text_holds_a_one_time_link_while_the_mails_carry_working_ones(
    app, web, people, server, link_mails
):
    def assert_nothing_stored() -> None:
        db.session.expire_all()
        texts = list(stored_texts())
        assert [t for t in texts if shown_links(t, link_mails)] == []
        for path in database_files():
            assert b"set-password" not in path.read_bytes(), path

    assert_nothing_stored()
    for address in link_mails.sent:
        assert row_for(address).sealed_raw is None  # nothing left to send
    for address in (link_mails.deferred, link_mails.queued):
        sealed = crypto.decrypt_bytes(row_for(address).sealed_raw)
        assert (
            link_in(BytesParser(policy=policy.default).parsebytes(sealed))
            == (link_mails.paths[address])
        )

    # The deferred one goes out at its next attempt, link intact; then it is dropped.
    omar = row_for(link_mails.deferred)
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == omar.id).values(next_attempt_at=utcnow())
    )
    db.session.commit()
    delivery.deliver(omar.id)
    run_worker()  # the queued one
    assert {row_for(a).status for a in link_mails.paths} == {"sent"}
    assert {row_for(a).sealed_raw for a in link_mails.paths} == {None}
    assert_nothing_stored()

    for address, path in link_mails.paths.items():
        assert link_in(arrived(server, address)) == path
        newcomer = visitor(web, "198.51.100.70")
        assert newcomer.get(path).status_code == 200
        done = newcomer.post(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 302 and "/login" not in done.headers["Location"], address
    assert visitor(web).login(people.acme_admin.email, NEW_PASSWORD).status_code == 302


def test_upgrade_seals_links_stored_before_and_downgrade_gives_waiting_mails_back(
    tmp_path, app_config
):
    key = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}",
        "PORTAL_INSTANCE_PATH": str(tmp_path),
        "PORTAL_ENCRYPTION_KEYS": key,
        "REDIS_URL": app_config["REDIS_URL"],
    }

    def portal(*args: str) -> None:
        command = [sys.executable, "-c", "from portal.app import main; main()", *args]
        subprocess.run(command, env=env, cwd=tmp_path, check=True, capture_output=True)

    def mail(subject: str) -> bytes:
        message = EmailMessage(policy=policy.SMTP)
        message["Subject"] = subject
        message.set_content(f"Set it here: http://portal.test{LINK_PATH}{'x' * 90}.sig\n")
        return message.as_bytes()

    invitation = "You are invited to manage mail for Acme Ltd"
    reset = "Reset your password for the mail portal"  # the English subjects of old rows
    rows = {
        1: ("sent", invitation, mail(invitation)),
        2: ("queued", reset, mail(reset)),
        3: ("sent", "Our new site", mail("Our new site")),  # not a system mail's link
    }
    portal("db", "upgrade", "074848d58adf")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        for row_id, (status, subject, raw) in rows.items():
            conn.execute(
                "INSERT INTO outbox_messages (id, message_id, status, envelope_from, recipients,"
                " subject, raw, size, attempts, recipient_results, created_at)"
                " VALUES (?, ?, ?, 'a@example.com', '[]', ?, ?, 0, 0, '{}', '2026-01-01')",
                (row_id, f"<{row_id}@example.com>", status, subject, raw),
            )
    portal("db", "upgrade")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        query = "SELECT raw, one_time_link, sealed_raw FROM outbox_messages ORDER BY id"
        (sent, waiting, other) = conn.execute(query).fetchall()
    assert sent == (rows[1][2].partition(b"\r\n\r\n")[0] + b"\r\n\r\n", 1, None)
    assert waiting[:2] == (rows[2][2].partition(b"\r\n\r\n")[0] + b"\r\n\r\n", 1)
    assert Fernet(key).decrypt(waiting[2]) == rows[2][2]
    assert other == (rows[3][2], 0, None)

    portal("db", "downgrade", "074848d58adf")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        (raw,) = conn.execute("SELECT raw FROM outbox_messages WHERE id = 2").fetchone()
    assert raw == rows[2][2]


# --- reset requests ----------------------------------------------------------------------


def table_counts() -> dict[str, int]:
    db.session.expire_all()
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }


def redis_keys() -> set[str]:
    return {key.decode() for key in redis_client.connection().keys("*")}


def shape(keys: set[str]) -> list[str]:
    """Keys with what names one request (address hash, client, job id) blanked out."""
    blanks = [
        (r"[0-9a-f]{64}", "<hash>"),
        (r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{32}", "<id>"),
        (r"\d+\.\d+\.\d+\.\d+", "<client>"),
    ]
    shaped = []
    for key in keys:
        for pattern, blank in blanks:
            key = re.sub(pattern, blank, key)
        shaped.append(key)
    return sorted(shaped)


def test_reset_for_a_known_and_an_unknown_address_answers_and_works_the_same(
    app, web, people, server
):
    point_global_settings_at(server.port)
    browsers = {n: visitor(web, f"192.0.2.{n}") for n in (1, 2, 3)}
    for browser in browsers.values():
        browser.csrf()
    forgot(browsers[3], "warm-up@example.com")  # the queue exists before both
    counts = table_counts()

    work = {}
    for n, address in ((1, people.acme_admin.email), (2, "nobody@example.com")):
        keys = redis_keys()
        response = forgot(browsers[n], address)
        work[address] = (response, shape(redis_keys() - keys), table_counts())

    (known, known_keys, known_counts), (unknown, unknown_keys, unknown_counts) = work.values()
    assert known.status_code == unknown.status_code == 200 and str(MSG_RESET_SENT) in known.text
    assert CSRF_VALUE.sub("", known.text) == CSRF_VALUE.sub("", unknown.text)
    headers = [
        {
            k: v
            for k, v in r.headers.items()
            if k not in ("Set-Cookie", "X-RateLimit-Reset", "X-Request-ID")
        }
        for r in (known, unknown)
    ]
    assert headers[0] == headers[1]
    assert known_counts == unknown_counts == counts  # the request itself writes nothing
    assert known_keys == unknown_keys and len(known_keys) == 3  # two limits and one job

    jobs = handoff.mail_queue().jobs
    assert [job.func_name for job in jobs] == [system_mail.SEND_RESET] * 3
    assert [list(job.args) for job in jobs[1:]] == [
        [people.acme_admin.email, f"http://portal.test{LINK_PATH}"],
        ["nobody@example.com", f"http://portal.test{LINK_PATH}"],
    ]
    run_worker()
    assert [m.rcpt_tos for m in server.handler.messages] == [[people.acme_admin.email]]


def test_reset_requests_are_limited_per_address_whatever_the_client(web, people):
    address = people.acme_admin.email
    for n in range(5):
        typed = address.upper() if n % 2 else f" {address}"
        assert forgot(visitor(web, f"192.0.2.{20 + n}"), typed).status_code == 200
    late = visitor(web, "192.0.2.30")
    refused = forgot(late, address)
    assert refused.status_code == 429
    assert "Too many reset requests (5 per 15 minute" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert forgot(late, people.globex_admin.email).status_code == 200


def test_reset_requests_are_limited_per_client_whatever_the_address(web, people):
    web.config["PASSWORD_RESET_CLIENT_RATE_LIMIT"] = "3 per hour"
    asker = visitor(web, "192.0.2.40")
    for n in range(3):
        assert forgot(asker, f"someone{n}@example.com").status_code == 200
    refused = forgot(asker, people.acme_admin.email)
    assert refused.status_code == 429 and "Too many reset requests (3 per 1 hour" in refused.text
    assert forgot(visitor(web, "192.0.2.41"), people.acme_admin.email).status_code == 200
