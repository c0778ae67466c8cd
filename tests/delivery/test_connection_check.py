"""Test connection: what an admin sees for each outcome, and what the real SMTP server saw."""

import asyncio
import contextlib
import email
import html
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from sqlalchemy import select
from support.connection_tests import finished_panel, status_url
from support.factories import allow_test_server, mail_config
from support.forms import VALID, company_data, steps
from support.smtp_servers import (
    HOST,
    RecordingHandler,
    Server,
    closed_port,
    raw_server,
    server_context,
    smtp_server,
)
from support.web import Browser

from portal import redis_client
from portal.delivery.connection_check import LOCK_KEY, TEST_SUBJECT
from portal.extensions import db
from portal.models import AuditEntry
from portal.settings.saving import MSG_PASSWORD_AGAIN
from portal.wire import probe
from portal.wire.config import SmtpConfig
from portal.wire.egress import EgressPolicy
from portal.wire.errors import secrets_of

GLOBAL_TEST = "/settings/mail/test"
RECIPIENT = "check@example.org"
SENDER = "noreply@example.com"  # VALID's sender address
SERVER_LOGIN = ("user", "secret")  # what RecordingHandler accepts
OK_STEPS = ["resolve", "connect", "greeting", "ehlo", "mail", "rcpt", "data", "accepted", "quit"]
TAG = re.compile(r"<[^>]+>")


def company_test(company) -> str:
    return f"/companies/{company.id}/email/test"


def global_form(port: int, /, **overrides) -> dict:
    """The global form as the page posts it: a plain server on loopback, no authentication."""
    data = {
        **VALID,
        "host": HOST,
        "port": str(port),
        "security": "none",
        "timeout_seconds": "10",
        "test_recipient": RECIPIENT,
        **overrides,
    }
    if overrides.get("auth_enabled") is None:
        for name in ("auth_enabled", "username", "password"):
            data.pop(name)
    return data


def with_login(user: str, password: str) -> dict:
    return {"auth_enabled": "y", "username": user, "password": password}


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: no tags, entities decoded, spaces collapsed."""
    spaced = " ".join(html.unescape(TAG.sub(" ", fragment)).split())
    return re.sub(r" ([:,.)])", r"\1", spaced)


def failed_step(page: str) -> str:
    (failed,) = [name for name, ok in steps(page) if not ok]
    return failed


def diagnosis(page: str) -> str:
    """The text of the .diagnosis box."""
    match = re.search(r'<(div|p) class="diagnosis[^"]*"[^>]*>(.*?)</\1>', page, re.S)
    assert match, page
    return text(match.group(2))


def step_details(page: str, name: str) -> str:
    match = re.search(rf'data-step="{name}">(.*?)</li>', page, re.S)
    assert match, page
    return text(match.group(1))


def audited_tests() -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).where(AuditEntry.action == "mail_settings.test")
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def arrived_mail(handler: RecordingHandler) -> EmailMessage:
    (message,) = handler.messages
    assert message.rcpt_tos == [RECIPIENT]
    return email.message_from_bytes(message.data, policy=policy.default)


@pytest.fixture
def server(app):
    """A plain aiosmtpd server on loopback, allowlisted in the global settings."""
    with smtp_server() as running:
        allow_test_server(running.port)
        yield running


@pytest.fixture
def tls(certs, web):
    """The server-side TLS context of a certificate from the test CA, which the portal trusts."""
    web.config["MAIL_CA_FILE"] = str(certs.ca)
    return server_context(certs.good)


# --- 1. Success ---------------------------------------------------------------------------


def test_plain_test_sends_the_test_mail_and_shows_every_step(as_superuser, server):
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(server.port))

    assert response.status_code == 200, response.text
    assert steps(response.text) == [(name, True) for name in OK_STEPS]
    assert "✗" not in response.text
    assert diagnosis(response.text) == (
        "Connection works. The test mail to the recipient was accepted (queue id M1)."
    )
    mail = arrived_mail(server.handler)
    assert server.handler.messages[0].mail_from == SENDER
    assert mail["From"] == f"Example <{SENDER}>" and mail["To"] == RECIPIENT
    assert mail["Subject"] == TEST_SUBJECT
    assert "the global configuration" in mail.get_content()
    assert step_details(response.text, "connect").endswith(f"connected to {HOST}:{server.port}")


def test_company_admin_tests_unsaved_company_values(as_acme, people, server):
    form = company_data(host=HOST, port=str(server.port), security="none", timeout_seconds="10")
    response = finished_panel(
        as_acme, company_test(people.acme), {**form, "test_recipient": RECIPIENT}, htmx=False
    )

    assert response.status_code == 200, response.text
    assert "Connection works." in diagnosis(response.text)
    mail = arrived_mail(server.handler)
    assert mail["From"] == "mail@acme.example.com" and mail["To"] == RECIPIENT
    assert "the company Acme Ltd" in mail.get_content()
    assert people.acme.mail_config is None  # tested, not saved
    assert "SMTP transcript" not in response.text  # the transcript is for the superuser


def test_starttls_with_login_shows_tls_and_auth_details(as_superuser, tls, certs):
    handler = RecordingHandler(user="mailer", password="tls-password")
    with smtp_server(handler, starttls=tls, require_starttls=True, auth=True) as running:
        allow_test_server(running.port)
        form = global_form(
            running.port, security="starttls", **with_login("mailer", "tls-password")
        )
        response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 200, response.text
    assert steps(response.text) == [
        (name, True)
        for name in ["resolve", "connect", "greeting", "ehlo", "starttls", "tls", "ehlo", "auth"]
        + OK_STEPS[4:]
    ]
    tls_details = step_details(response.text, "tls")
    assert re.search(r"TLSv1\.[23], certificate for localhost, valid until ", tls_details)
    not_after = re.search(r"valid until (\w+ +\d+ [\d:]+ \d{4} GMT)", tls_details).group(1)
    cert = x509.load_pem_x509_certificate(certs.good[0].read_bytes())
    assert ssl.cert_time_to_seconds(not_after) == int(cert.not_valid_after_utc.timestamp())
    assert "mechanism PLAIN" in step_details(response.text, "auth")
    # The server saw the login inside TLS, and the superuser's transcript hides it.
    assert [a for c in handler.connections for a in c.auths] == [("mailer", True, True)]
    assert arrived_mail(handler)["Subject"] == TEST_SUBJECT
    assert "AUTH PLAIN [redacted]" in response.text
    for secret in secrets_of("mailer", "tls-password"):
        assert secret not in response.text


def test_implicit_tls_with_login(as_superuser, tls):
    handler = RecordingHandler()
    with smtp_server(handler, implicit_tls=tls, auth=True) as running:
        allow_test_server(running.port)
        form = global_form(running.port, security="ssl", **with_login(*SERVER_LOGIN))
        response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 200, response.text
    names = [name for name, ok in steps(response.text) if ok]
    assert names == ["resolve", "connect", "tls", "greeting", "ehlo", "auth", *OK_STEPS[4:]]
    assert "certificate for localhost" in step_details(response.text, "tls")
    assert [a for c in handler.connections for a in c.auths] == [("user", True, True)]
    assert len(handler.messages) == 1


# --- 2. One diagnosis per cause -------------------------------------------------------------


@dataclass
class RefusingLogin(RecordingHandler):
    """Refuses every login with the reply a real provider gives."""

    auth_reply: str = "535 5.7.8 Authentication credentials invalid"

    def authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:
        super().authenticate(server, session, envelope, mechanism, data)  # records the attempt
        return AuthResult(success=False, handled=False, message=self.auth_reply)


GMAIL_535 = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials a640c23a62f3a-ab - gsmtp"
)
M365_535 = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
)


@dataclass(frozen=True)
class Case:
    """A server misbehaving one way, and what the admin must be told."""

    server: str  # "plain", "auth", "no_starttls", "closed", "none", or a certificate name
    form: dict
    step: str
    problem: str
    hint: str
    handler: dict | None = None
    reply: str | None = None  # the server reply shown


CASES = {
    "host-not-found": Case(
        "none",
        {"host": "nonexistent.invalid", "port": "25"},
        "resolve",
        "The host nonexistent.invalid was not found (no DNS record).",
        "Check the spelling of the host name",
    ),
    "connection-refused": Case(
        "closed",
        {},
        "connect",
        "Connection refused: nothing accepts connections on 127.0.0.1 port {port}.",
        "587 is STARTTLS, 465 is SSL/TLS",
    ),
    "tls-mismatch": Case(
        "plain",
        {"security": "ssl"},
        "tls",
        "TLS was spoken to a port that expects plain SMTP (or STARTTLS first).",
        "Choose STARTTLS for port 587 or 25, and SSL/TLS only for port 465.",
    ),
    "starttls-missing": Case(
        "no_starttls",
        {"security": "starttls", **with_login(*SERVER_LOGIN)},
        "starttls",
        "The server does not offer STARTTLS, so the connection would not be encrypted.",
        "Choose SSL/TLS on port 465",
    ),
    "certificate-expired": Case(
        "expired",
        {"security": "starttls"},
        "tls",
        "The server's certificate has expired.",
        "The mail provider must renew its certificate.",
    ),
    "certificate-wrong-host": Case(
        "wrong_host",
        {"security": "starttls"},
        "tls",
        "The server's certificate is not for 127.0.0.1.",
        "Use the host name the provider documents",
    ),
    "certificate-untrusted": Case(
        "untrusted",
        {"security": "starttls"},
        "tls",
        "The server's certificate is not trusted (unknown or self-signed issuer).",
        "For an internal CA, add its certificate under Trusted CA certificates (Server)",
    ),
    "auth-required": Case(
        "plain",
        {},
        "mail",
        "The server requires authentication.",
        "Turn Authentication on and enter the user and password of the mailbox.",
        {"mail_reply": "530 5.7.0 Authentication required"},
        "530 5.7.0 Authentication required",
    ),
    "auth-failed": Case(
        "auth",
        with_login("user", "wrong-password"),
        "auth",
        "The server refused the user name or password.",
        "Check the user (often the full address) and enter the password again.",
        None,
        "535 5.7.8 Authentication credentials invalid",
    ),
    "auth-gmail": Case(
        "auth",
        with_login("someone@gmail.com", "account-password"),
        "auth",
        "Gmail did not accept the user name and password (535-5.7.8).",
        "Use an app password (Google account → Security → App passwords), or OAuth2.",
        {"auth_reply": GMAIL_535},
        "gsmtp",
    ),
    "auth-m365-disabled": Case(
        "auth",
        with_login("someone@contoso.example", "account-password"),
        "auth",
        "Microsoft 365 has SMTP AUTH turned off for this tenant or mailbox (535 5.7.139).",
        "Enable authenticated SMTP for the mailbox in the Microsoft 365 admin center, "
        "or connect with OAuth2.",
        {"auth_reply": M365_535},
        "SmtpClientAuthentication is disabled",
    ),
    "auth-too-many": Case(
        "auth",
        with_login(*SERVER_LOGIN),
        "auth",
        "Too many failed login attempts: the server is blocking logins for now.",
        "Wait before trying again, and check the password first.",
        {"auth_reply": "454 4.7.0 Too many login attempts, please try again later"},
        "454 4.7.0 Too many login attempts",
    ),
    "sender-refused": Case(
        "plain",
        {},
        "mail",
        f"The server refused the sender address {SENDER}.",
        "Use a sender address the account may send as",
        {"mail_reply": "553 5.7.1 Sender address rejected: not owned by user"},
        "553 5.7.1 Sender address rejected",
    ),
    "relay-denied": Case(
        "plain",
        {},
        "rcpt",
        "The server does not relay mail to this recipient for this account.",
        "Turn Authentication on, or check that the server may send to outside domains.",
        {"rcpt_replies": {RECIPIENT: "554 5.7.1 <check@example.org>: Relay access denied"}},
        "554 5.7.1 <check@example.org>: Relay access denied",
    ),
    "too-large": Case(
        "plain",
        {},
        "data",
        "The server refused the message as too large.",
        "Send smaller mails or ask the provider for its size limit.",
        {"data_reply": "552 5.3.4 Message size exceeds fixed limit"},
        "552 5.3.4 Message size exceeds fixed limit",
    ),
    "send-as-denied": Case(
        "plain",
        {},
        "data",
        f"The mailbox may not send as {SENDER} (Microsoft 365 SendAsDenied).",
        "Use the mailbox address as the sender address",
        {"data_reply": f"554 5.2.252 SendAsDenied; mailbox@example.com may not send as {SENDER}"},
        "554 5.2.252 SendAsDenied",
    ),
}


@contextlib.contextmanager
def misbehaving(case: Case, certs, web):
    """The server of a case, allowlisted (for "none" and "closed": a port nobody listens on)."""
    if case.server in ("none", "closed"):
        port = closed_port()
        allow_test_server(port)
        yield Server(HOST, port, None)
        return
    if case.server == "no_starttls":
        running_server = raw_server("no_starttls")
    else:
        options = dict(case.handler or {})
        handler = RefusingLogin(**options) if case.server == "auth" else RecordingHandler(**options)
        kwargs = {"auth": case.server == "auth"}
        if case.server in CERTIFICATE_CASES:
            web.config["MAIL_CA_FILE"] = None if case.server == "untrusted" else str(certs.ca)
            pair = certs.good if case.server == "untrusted" else getattr(certs, case.server)
            kwargs["starttls"] = server_context(pair)
        running_server = smtp_server(handler, **kwargs)
    with running_server as running:
        allow_test_server(running.port)
        yield running


CERTIFICATE_CASES = ("expired", "wrong_host", "untrusted")


@pytest.mark.parametrize("cause", CASES)
def test_each_cause_is_diagnosed_at_its_step(as_superuser, certs, web, cause):
    case = CASES[cause]
    with misbehaving(case, certs, web) as running:
        form = global_form(running.port, **case.form)
        response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 200, response.text
    shown = steps(response.text)
    assert [name for name, ok in shown if not ok] == [case.step], shown
    assert all(ok for _, ok in shown[: [name for name, _ in shown].index(case.step)])
    told = diagnosis(response.text)
    assert case.problem.format(port=running.port) in told
    assert case.hint in told
    if case.reply:
        assert case.reply in text(re.search(r"Server reply:(.*?)</p>", response.text, re.S)[1])
    assert "Connection works." not in response.text
    for secret in secrets_of(form.get("username"), form.get("password")):
        assert secret not in response.text
    if isinstance(running.handler, RecordingHandler):
        assert running.handler.messages == []  # nothing was delivered
    if case.server in CERTIFICATE_CASES:  # nothing went over the unverified connection
        assert running.handler.commands() == ["EHLO", "STARTTLS"]
    if case.server == "no_starttls":  # the login never went out in plain text
        assert [line.split()[0].upper() for line in running.handler] == ["EHLO"]


def test_each_cause_has_its_own_message():
    problems = [case.problem for case in CASES.values()]
    assert len(set(problems)) == len(problems)


def test_no_answer_names_the_port_and_firewalls(as_superuser, app, monkeypatch):
    # On loopback a closed port answers at once with a reset: a real server cannot make the
    # SYN go unanswered, so the connect timeout is produced by the socket layer itself.
    port = closed_port()
    allow_test_server(port)
    real = socket.create_connection

    def unanswered(address, *args, **kwargs):
        if address[1] == port:
            raise TimeoutError("timed out")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", unanswered)
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(port))

    assert response.status_code == 200
    assert failed_step(response.text) == "connect"
    told = diagnosis(response.text)
    assert f"No answer from 127.0.0.1 port {port} within 10 s." in told
    assert "closed ports: a firewall" in told and f"connections to port {port}" in told


def test_greeting_timeout_through_the_endpoint_uses_the_configured_timeout(as_superuser, app):
    # 10 s is the smallest timeout the form allows: this is the one slow test of the file.
    with raw_server("silent") as silent:
        allow_test_server(silent.port)
        started = time.monotonic()
        response = finished_panel(as_superuser, GLOBAL_TEST, global_form(silent.port))
    assert 9.5 < time.monotonic() - started < 13
    assert failed_step(response.text) == "greeting"
    told = diagnosis(response.text)
    assert "sent no greeting within 10 s" in told and "choose SSL/TLS security" in told
    assert audited_tests()[-1].changes["result"].startswith("failed at Server greeting: ")


class SlowRecipient(RecordingHandler):
    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        await asyncio.sleep(3)
        return await super().handle_RCPT(server, session, envelope, address, options)


def probe_run(port: int, security: str = "none") -> probe.ProbeResult:
    """The service's check with a 1 s timeout, below what the form allows."""
    config = SmtpConfig(host=HOST, port=port, security=security, timeout=1.0)
    return probe.run(
        config,
        sender=SENDER,
        recipient=RECIPIENT,
        message=b"Subject: t\r\n\r\nt\r\n",
        policy=EgressPolicy.parse("127.0.0.1/32", str(port)),
        deadline=1.0,
    )


def test_silent_server_is_no_greeting():
    with raw_server("silent") as silent:
        result = probe_run(silent.port)
    assert result.failed_step == "greeting" and result.diagnosis.cause == "no-greeting"
    assert "sent no greeting within 1 s" in result.diagnosis.problem
    assert "SSL/TLS" in result.diagnosis.hint


def test_starttls_against_an_implicit_tls_port_suggests_ssl(certs):
    handler = RecordingHandler()
    with smtp_server(handler, implicit_tls=server_context(certs.good)) as running:
        result = probe_run(running.port, security="starttls")
    assert result.failed_step == "greeting" and result.diagnosis.cause == "no-greeting"
    assert "sent no greeting within 1 s" in result.diagnosis.problem
    assert "choose SSL/TLS security" in result.diagnosis.hint
    assert handler.messages == []


def test_timeout_names_the_step_and_the_configured_timeout():
    handler = SlowRecipient()
    with smtp_server(handler) as running:
        result = probe_run(running.port)
    assert result.failed_step == "rcpt" and result.diagnosis.cause == "timeout"
    assert result.diagnosis.problem == ("Timeout during rcpt: no answer within the configured 1 s.")
    assert [s.name for s in result.steps if s.ok][:5] == OK_STEPS[:5]


def test_no_answer_after_the_message_says_it_may_still_arrive():
    handler = RecordingHandler(data_delay=3)
    with smtp_server(handler) as running:
        result = probe_run(running.port)
    assert result.failed_step == "data" and result.diagnosis.cause == "no-final-answer"
    assert "did not confirm it in time" in result.diagnosis.problem
    assert "It may still arrive" in result.diagnosis.hint


# --- 3. SSRF: refused before any connection -------------------------------------------------


@pytest.fixture
def trap(app, monkeypatch):
    """A real server on 127.0.0.1 (its port allowed, the address not) and a record of connects."""
    attempts: list[tuple] = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        attempts.append(address)
        return real(address, *args, **kwargs)

    with smtp_server() as running:
        mail_config(egress_extra_ports=str(running.port))
        monkeypatch.setattr(socket, "create_connection", spy)
        yield running, attempts


@pytest.fixture
def internal_name(monkeypatch) -> str:
    """A public-looking host name whose DNS answer is an internal address."""
    real = socket.getaddrinfo

    def answer(host, port, *args, **kwargs):
        if host == "smtp.rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    return "smtp.rebind.example"


# (host, port: None for the trap's, what the superuser is told exactly)
FORBIDDEN = [
    ("127.0.0.1", None, "127.0.0.1 (loopback range 127.0.0.0/8)"),
    ("10.0.0.5", None, "10.0.0.5 (private range 10.0.0.0/8)"),
    ("169.254.169.254", None, "169.254.169.254 (link-local range 169.254.0.0/16)"),
    ("100.64.0.1", None, "100.64.0.1 (carrier-grade NAT range 100.64.0.0/10)"),
    ("[::1]", None, "::1 (loopback range ::1/128)"),
    ("::ffff:127.0.0.1", None, "embeds 127.0.0.1 (loopback range 127.0.0.0/8)"),
    ("smtp.rebind.example", 25, "smtp.rebind.example resolves to 10.0.0.5 (private range"),
    ("smtp.example.com", 22, "Port 22 is not allowed; allowed ports: 25, 465, 587, 2525"),
]
FORBIDDEN_IDS = [f"{host}:{port or 'smtp'}" for host, port, _ in FORBIDDEN]


def try_destination(browser, people, role: str, host: str, port: int):
    """Log in as role and test host:port; the response."""
    if role == "superuser":
        browser.login(people.superuser.email)
        return finished_panel(browser, GLOBAL_TEST, global_form(port, host=host))
    browser.login(people.acme_admin.email)
    form = company_data(host=host, port=str(port), security="none", timeout_seconds="10")
    return finished_panel(
        browser, company_test(people.acme), {**form, "test_recipient": RECIPIENT}, htmx=False
    )


@pytest.mark.parametrize(("host", "port", "full"), FORBIDDEN, ids=FORBIDDEN_IDS)
@pytest.mark.parametrize("role", ["superuser", "acme"])
def test_forbidden_destination_is_refused_before_connecting(
    browser, people, trap, internal_name, role, host, port, full
):
    running, attempts = trap
    response = try_destination(browser, people, role, host, port or running.port)

    assert response.status_code == 200, response.text
    assert steps(response.text) == [("resolve", False)]
    told = diagnosis(response.text)
    if port == 22:
        assert told.startswith("Port 22 is not an SMTP port allowed here. Use 587 (STARTTLS)")
    else:
        assert told.startswith("This destination is not allowed: it points to an internal")
    if role == "acme":  # the coarse text: no address, range or port list
        assert "range" not in response.text and "allowed ports" not in response.text
        assert "10.0.0.5" not in response.text or host == "10.0.0.5"
    assert attempts == [] and running.handler.connections == []
    assert audited_tests()[-1].changes["result"].startswith("failed at Resolve the host: ")


@pytest.mark.parametrize(
    ("host", "port", "full"),
    [FORBIDDEN[1], FORBIDDEN[6], FORBIDDEN[7]],
    ids=["private-literal", "name-resolving-inside", "port-22"],
)
def test_superuser_is_told_exactly_why_a_destination_is_refused(
    browser, people, trap, internal_name, host, port, full
):
    running, attempts = trap
    response = try_destination(browser, people, "superuser", host, port or 25)
    assert steps(response.text) == [("resolve", False)]
    assert full in text(response.text)
    assert attempts == []


def test_odd_ipv4_spelling_is_refused_by_the_form(as_superuser, trap):
    running, attempts = trap
    response = finished_panel(
        as_superuser, GLOBAL_TEST, global_form(running.port, host="0177.0.0.1"), htmx=False
    )
    assert response.status_code == 422
    assert diagnosis(response.text) == "Correct these fields first: Host."
    assert attempts == [] and running.handler.connections == [] and audited_tests() == []


# --- 4. The stored password ------------------------------------------------------------------


@pytest.fixture
def saved_login(as_superuser, app):
    """Global settings saved with a password, for a server that accepts only that password."""
    handler = RecordingHandler(user="mailer", password=VALID["password"])
    with smtp_server(handler, auth=True) as running:
        form = global_form(
            running.port,
            **with_login("mailer", VALID["password"]),
            egress_allowlist="127.0.0.1/32",
            egress_extra_ports=str(running.port),
        )
        response = as_superuser.post("/settings/mail", form, htmx=True)
        assert response.status_code == 200 and "Mail settings saved." in response.text
        yield running, form


def test_empty_password_uses_the_stored_one_for_the_same_server(as_superuser, saved_login):
    running, form = saved_login
    response = finished_panel(as_superuser, GLOBAL_TEST, {**form, "password": ""})

    assert response.status_code == 200, response.text
    assert "Connection works." in diagnosis(response.text)
    assert [a for c in running.handler.connections for a in c.auths] == [("mailer", False, True)]
    assert VALID["password"] not in response.text


@pytest.mark.parametrize("change", ["host", "port", "username", "security"])
def test_stored_password_is_never_sent_to_another_server(as_superuser, saved_login, change):
    running, form = saved_login
    with smtp_server(auth=True) as other:
        allow_test_server(other.port)
        changed = {
            "host": "localhost",
            "port": str(other.port),
            "username": "someone-else",
            "security": "starttls",
        }
        data = {**form, change: changed[change], "password": ""}
        response = finished_panel(as_superuser, GLOBAL_TEST, data)

        assert response.status_code == 422
        assert diagnosis(response.text) == MSG_PASSWORD_AGAIN
        assert other.handler.connections == [] and running.handler.connections == []
    assert audited_tests() == []


# --- 5. Limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [None, "2 per 10 minutes"])
def test_too_many_tests_by_one_user(as_superuser, people, server, web, limit):
    allowed = 10
    if limit:  # read on each request: the config can change while the app runs
        web.config["MAIL_TEST_RATE_LIMIT"] = limit
        allowed = 2
    form = global_form(server.port)
    for _ in range(allowed):
        assert finished_panel(as_superuser, GLOBAL_TEST, form).status_code == 200
    response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert response.status_code == 429
    assert diagnosis(response.text).startswith(
        f"Too many connection tests ({allowed} per 10 minutes)"
    )
    assert "Try again later." in diagnosis(response.text)
    assert int(response.headers["Retry-After"]) > 0
    assert len(server.handler.messages) == allowed
    # The limit is per user: the Acme admin may still test.
    other = Browser(web.test_client())
    other.login(people.acme_admin.email)
    company_form = company_data(host=HOST, port=str(server.port), security="none")
    response = finished_panel(
        other, company_test(people.acme), {**company_form, "test_recipient": RECIPIENT}, htmx=False
    )
    assert response.status_code == 200 and "Connection works." in response.text


def test_one_running_test_per_company(as_acme, app, people, server):
    redis = redis_client.connection(app)
    key = LOCK_KEY.format(people.acme.id)
    assert key == f"portal:test-running:{people.acme.id}"
    redis.set(key, 1, ex=60)  # another web worker is testing Acme's settings
    form = company_data(host=HOST, port=str(server.port), security="none")
    form["test_recipient"] = RECIPIENT
    response = finished_panel(as_acme, company_test(people.acme), form)

    assert response.status_code == 429
    assert diagnosis(response.text) == "A test of these settings is already running: wait for it."
    assert server.handler.connections == [] and audited_tests() == []
    assert redis.exists(key)  # the refused request does not release the other's lock

    redis.delete(key)
    response = finished_panel(as_acme, company_test(people.acme), form)
    assert response.status_code == 200 and "Connection works." in response.text
    assert not redis.exists(key)  # released when the test ended


def test_lock_of_one_company_does_not_block_the_global_page(as_superuser, app, people, server):
    redis_client.connection(app).set(LOCK_KEY.format(people.acme.id), 1, ex=60)
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(server.port))
    assert response.status_code == 200 and "Connection works." in response.text

    redis_client.connection(app).set(LOCK_KEY.format("global"), 1, ex=60)
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(server.port))
    assert response.status_code == 429 and "already running" in response.text


# --- 6. The audit ----------------------------------------------------------------------------


def test_each_test_is_audited_and_listed_without_secrets(as_acme, people):
    handler = RecordingHandler(user="acme", password="acme-smtp-pass")
    with smtp_server(handler, auth=True) as running:
        allow_test_server(running.port)
        form = company_data(host=HOST, port=str(running.port), security="none")
        form.update(test_recipient=RECIPIENT, **with_login("acme", "acme-smtp-pass"))
        url = company_test(people.acme)
        good = finished_panel(as_acme, url, form)
        bad = finished_panel(as_acme, url, {**form, "password": "wrong-smtp-pass"})

    server = f"{HOST}:{running.port}"
    assert [(r.company_id, r.actor_id, r.changes) for r in audited_tests()] == [
        (people.acme.id, people.acme_admin.id, {"server": server, "result": "succeeded"}),
        (
            people.acme.id,
            people.acme_admin.id,
            {
                "server": server,
                "result": "failed at Authentication: The server refused the user name or password.",
            },
        ),
    ]
    page = as_acme.get(f"/companies/{people.acme.id}/history?kind=tests").text
    history = text(re.search(r'<section id="history-entries".*?</section>', page, re.S)[0])
    assert history.count("Connection tested") == 2
    assert "Result: succeeded" in history
    assert "Result: failed at Authentication: The server refused" in history
    assert f"Server: {server}" in history
    tab = as_acme.get(f"/companies/{people.acme.id}/email").text
    short = text(re.search(r'<section id="history".*?</section>', tab, re.S)[0])
    assert "Connection tested" not in short  # tests change nothing: only the full history
    stored = json.dumps([r.changes for r in audited_tests()])
    for secret in [
        *secrets_of("acme", "acme-smtp-pass"),
        *secrets_of("acme", "wrong-smtp-pass"),
    ]:
        for shown in (good.text, bad.text, page, stored):
            assert secret not in shown


def test_echoed_credentials_are_redacted_everywhere(as_superuser, app):
    """A careless server echoes what AUTH sent: neither reply nor transcript may show it."""
    with raw_server("no_starttls") as careless:
        allow_test_server(careless.port)
        form = global_form(careless.port, **with_login("mailer", "echoed-password"))
        response = finished_panel(as_superuser, GLOBAL_TEST, form)

    assert failed_step(response.text) == "auth"
    assert any(line.startswith("AUTH PLAIN ") for line in careless.handler)  # it was echoed
    assert "SMTP transcript" in response.text
    for secret in secrets_of("mailer", "echoed-password"):
        assert secret not in response.text
    assert "echoed-password" not in json.dumps([r.changes for r in audited_tests()])


# --- Input, access, tenants -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"test_recipient": "not an address"},
            "Enter the address the test mail goes to. An email address must have an @-sign.",
        ),
        ({"test_recipient": ""}, "Enter the address the test mail goes to."),
        ({"port": "abc"}, "Correct these fields first: Port."),
        ({"timeout_seconds": "5"}, "Correct these fields first: SMTP timeout (seconds)."),
        ({"host": ""}, "Correct these fields first: Host."),
    ],
)
def test_refused_input_is_422_and_connects_nowhere(as_superuser, server, overrides, message):
    response = finished_panel(as_superuser, GLOBAL_TEST, global_form(server.port, **overrides))
    assert response.status_code == 422
    assert diagnosis(response.text) == message
    assert server.handler.connections == [] and audited_tests() == []


def test_admin_cannot_test_another_company(as_acme, people, server):
    form = company_data(host=HOST, port=str(server.port), security="none")
    response = finished_panel(
        as_acme, company_test(people.globex), {**form, "test_recipient": RECIPIENT}, htmx=False
    )
    assert response.status_code == 404
    assert as_acme.post(GLOBAL_TEST, global_form(server.port)).status_code == 403
    assert server.handler.connections == [] and audited_tests() == []


def test_anonymous_is_sent_to_login(browser, people, server):
    for url in (GLOBAL_TEST, company_test(people.acme)):
        response = browser.post(url, global_form(server.port))
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert server.handler.connections == []


def test_missing_csrf_token_is_400(as_acme, people, server):
    form = company_data(host=HOST, port=str(server.port), security="none")
    response = as_acme.client.post(
        company_test(people.acme),
        data={**form, "test_recipient": RECIPIENT},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert server.handler.connections == [] and audited_tests() == []


# --- 7. In the user's language ---------------------------------------------------------------


def step_label(page: str, name: str) -> str:
    """What a step's line says before its time: its label."""
    match = re.search(rf'data-step="{name}">\s*<span class="mark"[^>]*>.</span>([^<]*)<', page)
    assert match, page
    return match.group(1).strip()


def test_a_refused_password_is_diagnosed_in_the_language_the_user_chose(
    as_superuser, people, certs, web
):
    people.superuser.language = "pt_BR"
    db.session.commit()
    case = CASES["auth-failed"]
    with misbehaving(case, certs, web) as running:
        response = finished_panel(as_superuser, GLOBAL_TEST, global_form(running.port, **case.form))

    assert response.status_code == 200, response.text
    told = diagnosis(response.text)
    assert told.startswith(
        "O servidor recusou o nome de usuário ou a senha. "
        "Verifique o usuário (geralmente o endereço completo) e informe a senha novamente."
    )
    assert "Resposta do servidor: 535 5.7.8 Authentication credentials invalid" in told
    assert failed_step(response.text) == "auth"
    assert step_label(response.text, "auth") == "Autenticação"
    assert step_label(response.text, "ehlo") == "EHLO"  # the protocol's own word
    assert "Não assinado: nenhuma chave DKIM ativa para example.com." in response.text
    # What is stored stays English: the history translates it for each reader.
    assert audited_tests()[-1].changes["result"] == (
        "failed at Authentication: The server refused the user name or password."
    )


def test_a_certificate_for_another_host_is_diagnosed_in_the_browsers_language(
    as_superuser, certs, web
):
    as_superuser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "cs,en;q=0.5"
    case = CASES["certificate-wrong-host"]
    with misbehaving(case, certs, web) as running:
        response = finished_panel(as_superuser, GLOBAL_TEST, global_form(running.port, **case.form))

    assert response.status_code == 200, response.text
    assert failed_step(response.text) == "tls"
    assert diagnosis(response.text).startswith(
        f"Certifikát serveru není vystaven pro {HOST}. "
        "Použijte název hostitele, který uvádí dokumentace poskytovatele (ten z jeho certifikátu)."
    )
    assert step_label(response.text, "tls") == "Navázání TLS"
    assert f"připojeno k {HOST}:{running.port}" in step_details(response.text, "connect")


def test_a_test_stored_before_its_values_were_kept_apart_still_reads_translated(
    as_superuser, people, server
):
    people.superuser.language = "pl"
    db.session.commit()
    started = as_superuser.post(GLOBAL_TEST, global_form(server.port), htmx=True)
    test_id = status_url(started.text).rsplit("/", 1)[1]
    redis = redis_client.connection()
    key = f"portal:connection-test:{test_id}:state"
    state = json.loads(redis.get(key))
    # A result as the previous release stored it: the sentences whole, no values apart.
    old = {
        "cause": "connection-refused",
        "problem": "Connection refused: nothing accepts connections on 127.0.0.1 port 2525.",
        "hint": "Check the port: 587 is STARTTLS, 465 is SSL/TLS, 25 is plain SMTP.",
    }
    result = {"diagnosis": old, "server_reply": None, "detail": None, "transcript": []}
    steps_done = [
        {
            "name": "connect",
            "label": "Connect",
            "ok": False,
            "seconds": 0.01,
            "since": None,
            "details": ["Something only the server says"],
        },
    ]
    state.update(
        status="done",
        seconds=0.2,
        steps=steps_done,
        server="127.0.0.1:2525",
        result={**result, "queue_id": None, "cancelled": False},
    )
    redis.set(key, json.dumps(state))

    response = as_superuser.get(status_url(started.text), htmx=True)

    assert diagnosis(response.text) == (
        "Połączenie odrzucone: nic nie przyjmuje połączeń na 127.0.0.1, port 2525. "
        "Sprawdź port: 587 to STARTTLS, 465 to SSL/TLS, 25 to zwykły SMTP."
    )
    assert step_label(response.text, "connect") == "Połączenie"
    assert step_details(response.text, "connect").endswith("Something only the server says")


def test_the_test_mail_is_written_in_the_language_of_the_user_who_tests(as_acme, people, server):
    people.acme_admin.language = "ro"
    db.session.commit()
    form = company_data(host=HOST, port=str(server.port), security="none", timeout_seconds="10")
    response = finished_panel(
        as_acme, company_test(people.acme), {**form, "test_recipient": RECIPIENT}, htmx=False
    )

    assert diagnosis(response.text).startswith("Conexiunea funcționează.")
    assert "Testul a durat 0," in response.text  # the decimal comma of Romanian
    assert '<html lang="ro">' in as_acme.get(f"/companies/{people.acme.id}/email").text
    mail = arrived_mail(server.handler)
    assert mail["Subject"] == "E-mail de test de la portalul de e-mail"
    body = mail.get_content().replace("\r\n", "\n")
    assert body.startswith(
        "Acesta este un e-mail de test trimis de admin din setările de e-mail ale companiei "
        "Acme Ltd.\n\nSetări testate: 127.0.0.1, portul"
    )
