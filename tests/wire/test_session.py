"""The SMTP client against real servers on 127.0.0.1: what arrived, and which error was raised."""

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.smtp_servers import (
    CertAndKey,
    Certs,
    Message,
    RecordingHandler,
    Server,
    closed_port,
    make_certs,
    raw_server,
    server_context,
    smtp_server,
)

from portal.wire.config import SmtpConfig
from portal.wire.errors import (
    SmtpAuthError,
    SmtpConnectError,
    SmtpError,
    SmtpPermanentError,
    SmtpRecipientsDeferredError,
    SmtpRecipientsRefusedError,
    SmtpRecipientsRejectedError,
    SmtpTemporaryError,
    SmtpTimeoutError,
    SmtpTlsError,
    SmtpUnknownOutcomeError,
    SmtpWithdrawnError,
)
from portal.wire.session import Delivery, SmtpSession

SENDER, TO = "app@example.test", "alice@example.test"
MESSAGE = b"From: app@example.test\r\nSubject: Hi\r\n\r\nHello\r\n.a line starting with a dot\r\n"
MARKER = "PW-5f1c2e0b-marker"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    """start(handler, **options) runs an aiosmtpd server, start("kind") a raw one; both stop."""
    with contextlib.ExitStack() as stack:

        def run(handler: RecordingHandler | str | None = None, **options: Any) -> Server:
            if isinstance(handler, str):
                return stack.enter_context(raw_server(handler))
            return stack.enter_context(smtp_server(handler, **options))

        yield run


def config(server: Server | None = None, **values: Any) -> SmtpConfig:
    values.setdefault("host", server.host if server else "127.0.0.1")
    values.setdefault("port", server.port if server else 25)
    return SmtpConfig(**{"security": "none", "timeout": 2.0, **values})


def tls_config(server: Server, certs: Certs, security: str, **values: Any) -> SmtpConfig:
    values = {
        "host": "localhost",  # the certificate's name, while the socket goes to the pinned IP
        "connect_address": "127.0.0.1",
        "ca_file": str(certs.ca),
        "username": "user",
        "password": "secret",
        **values,
    }
    return config(server, security=security, **values)


def send(cfg: SmtpConfig, recipients: tuple[str, ...] = (TO,), **session: Any) -> Delivery:
    with SmtpSession(cfg, **session) as smtp:
        return smtp.send(SENDER, recipients, MESSAGE)


def tls_server(start: Callable[..., Server], security: str, cert: CertAndKey) -> Server:
    context = server_context(cert)
    if security == "ssl":
        return start(implicit_tls=context, auth=True)
    return start(starttls=context, require_starttls=True, auth=True)


def test_plain_send_delivers_the_bytes(start):
    server = start()
    delivery = send(config(server))
    assert delivery.accepted == (TO,) and delivery.refused == {} and delivery.code == 250
    assert delivery.reply.startswith("250 2.0.0 Ok: queued")
    assert server.handler.messages == [Message(SENDER, [TO], MESSAGE)]


def test_bare_line_feeds_go_out_as_crlf(start):
    server = start()
    with SmtpSession(config(server)) as smtp:
        smtp.send(SENDER, [TO], MESSAGE.replace(b"\r\n", b"\n"))
    assert server.handler.messages[0].data == MESSAGE


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_send_authenticates_only_after_tls(start, certs, security):
    server = tls_server(start, security, certs.good)
    send(tls_config(server, certs, security))
    (connection,) = server.handler.connections
    assert connection.messages == [Message(SENDER, [TO], MESSAGE)]
    assert connection.auths == [("user", True, True)]
    after_tls = [("EHLO", True), ("AUTH", True), ("MAIL", True), ("RCPT", True), ("DATA", True)]
    before_tls = [("EHLO", False), ("STARTTLS", False)] if security == "starttls" else []
    assert connection.commands == [*before_tls, *after_tls, ("QUIT", True)]


@pytest.mark.parametrize("kind", ["no_starttls", "plain_with_auth"])
def test_starttls_not_offered_stops_before_auth(start, kind):
    server = start(kind) if kind == "no_starttls" else start(auth=True)
    cfg = config(server, security="starttls", username="user", password="secret")
    with pytest.raises(SmtpTlsError, match="STARTTLS not offered") as caught:
        send(cfg)
    assert caught.value.step == "starttls"
    lines = server.handler if kind == "no_starttls" else server.handler.commands()
    assert not [line for line in lines if line.upper().startswith(("AUTH", "MAIL"))]


def test_plaintext_injected_after_starttls_is_refused(start):
    server = start("starttls_inject")
    with pytest.raises(SmtpTlsError):
        send(config(server, security="starttls"))


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize(
    ("cert", "values", "words"),
    [
        ("good", {"ca_file": None}, "unable to get local issuer certificate"),
        ("expired", {}, "certificate has expired"),
        ("wrong_host", {}, "Hostname mismatch"),
        ("good", {"host": "mail.example.test"}, "Hostname mismatch"),  # pinned IP, other name
    ],
)
def test_untrusted_certificate_is_refused(start, certs, security, cert, values, words):
    server = tls_server(start, security, getattr(certs, cert))
    with pytest.raises(SmtpTlsError, match=words) as caught:
        send(tls_config(server, certs, security, **values))
    assert caught.value.step == "tls"
    assert "AUTH" not in server.handler.commands() and server.handler.messages == []


def test_implicit_tls_client_on_a_plain_port(start, certs):
    server = start()
    with pytest.raises(SmtpTlsError, match="wrong version number"):
        send(config(server, security="ssl", ca_file=str(certs.ca)))


def test_starttls_client_on_an_implicit_tls_port_times_out_at_greeting(start, certs):
    # The TLS server waits for a ClientHello and the client for a greeting: only a timeout ends it.
    server = start(implicit_tls=server_context(certs.good))
    with pytest.raises(SmtpTimeoutError, match='implicit TLS, use security "ssl"') as caught:
        send(config(server, security="starttls", timeout=1.0))
    assert caught.value.step == "greeting"


def test_refused_connection():
    with pytest.raises(SmtpConnectError, match="refused") as caught:
        send(config(port=closed_port()))
    assert caught.value.step == "connect" and not caught.value.permanent


def test_unresolvable_host():
    with pytest.raises(SmtpConnectError) as caught:
        send(config(host="nonexistent.invalid"))
    assert caught.value.step == "resolve"


def test_missing_greeting_times_out(start):
    server = start("silent")
    with pytest.raises(SmtpTimeoutError, match="1s") as caught:
        send(config(server, timeout=1.0))
    assert (caught.value.step, caught.value.timeout) == ("greeting", 1.0)


def test_trickled_greeting_is_cut_by_the_deadline(start):
    server = start("trickle")
    began = time.monotonic()
    with pytest.raises(SmtpTimeoutError, match="deadline of 3s") as caught:
        send(config(server, timeout=2.0), deadline=3.0)
    assert caught.value.step == "greeting"
    assert time.monotonic() - began < 20


def test_wrong_password_raises_auth_error_without_the_password(start, certs):
    server = tls_server(start, "starttls", certs.good)
    cfg = tls_config(server, certs, "starttls", password=MARKER)
    with pytest.raises(SmtpAuthError) as caught:
        send(cfg)
    error = caught.value
    assert (error.code, error.step, error.permanent) == (535, "auth", True)
    assert "Authentication credentials invalid" in error.reply
    assert MARKER not in f"{error} {error!r} {cfg!r} {cfg}"


def test_a_refused_password_is_tried_once_not_once_per_method(start, certs):
    server = tls_server(start, "starttls", certs.good)  # offers PLAIN and LOGIN
    with pytest.raises(SmtpAuthError):
        send(tls_config(server, certs, "starttls", password=MARKER))
    (connection,) = server.handler.connections
    assert connection.auths == [("user", True, False)]
    assert [verb for verb, _ in connection.commands].count("AUTH") == 1


def test_password_echoed_by_the_server_is_redacted(start):
    server = start("no_starttls")
    with pytest.raises(SmtpAuthError) as caught:
        send(config(server, username="user", password=MARKER))
    assert caught.value.code == 535
    assert caught.value.reply == "5.7.8 Bad credentials: PLAIN ***"  # base64 of user+password


@pytest.mark.parametrize(
    ("reply", "kind", "connections"),
    [
        ("421 4.3.2 Shutting down", SmtpTemporaryError, 2),  # 421: reconnected once, in vain
        ("450 4.2.0 Mailbox busy", SmtpTemporaryError, 1),
        ("451 4.3.0 Try again later", SmtpTemporaryError, 1),
        ("550 5.7.1 Sender rejected", SmtpPermanentError, 1),
    ],
)
def test_refused_sender(start, reply, kind, connections):
    server = start(RecordingHandler(mail_reply=reply))
    with SmtpSession(config(server)) as smtp, pytest.raises(kind) as caught:
        smtp.send(SENDER, [TO], MESSAGE)
    error = caught.value
    assert (error.step, error.code, error.reply) == ("mail", int(reply[:3]), reply[4:])
    assert error.permanent is (kind is SmtpPermanentError)
    assert smtp.sessions_opened == connections == len(server.handler.connections)


def test_rejected_message_after_data(start):
    server = start(RecordingHandler(data_reply="552 5.3.4 Message too big"))
    with pytest.raises(SmtpPermanentError) as caught:
        send(config(server))
    assert (caught.value.step, caught.value.code, caught.value.permanent) == ("data", 552, True)


def test_one_refused_recipient_of_three(start):
    bad = "bob@example.test"
    server = start(RecordingHandler(rcpt_replies={bad: "550 5.1.1 No such user"}))
    delivery = send(config(server), (TO, bad, "carol@example.test"))
    assert delivery.accepted == (TO, "carol@example.test")
    assert delivery.refused == {bad: (550, "5.1.1 No such user")}
    assert server.handler.messages == [Message(SENDER, [TO, "carol@example.test"], MESSAGE)]


@pytest.mark.parametrize(
    ("code", "kind", "family"),
    [
        (550, SmtpRecipientsRejectedError, SmtpPermanentError),
        (450, SmtpRecipientsDeferredError, SmtpTemporaryError),
    ],
)
def test_all_recipients_refused(start, code, kind, family):
    rcpts = {"x@example.test": f"{code} no", "y@example.test": "550 no"}
    server = start(RecordingHandler(rcpt_replies=rcpts))
    with SmtpSession(config(server)) as smtp:
        with pytest.raises(kind) as caught:
            smtp.send(SENDER, list(rcpts), MESSAGE)
        smtp.send(SENDER, [TO], MESSAGE)  # the same connection goes on after RSET
    assert isinstance(caught.value, SmtpRecipientsRefusedError | family)
    assert caught.value.code == code and caught.value.permanent is (code >= 500)
    assert caught.value.recipients == {
        "x@example.test": (code, "no"),
        "y@example.test": (550, "no"),
    }
    assert smtp.sessions_opened == 1 and len(server.handler.messages) == 1


@pytest.mark.parametrize(("timeout", "deadline"), [(1.0, None), (5.0, 1.0)])
def test_silence_after_the_final_dot_is_an_unknown_outcome(start, timeout, deadline):
    server = start(RecordingHandler(data_delay=3.0))
    with SmtpSession(config(server, timeout=timeout), deadline=deadline) as smtp:
        with pytest.raises(SmtpUnknownOutcomeError) as caught:
            smtp.send(SENDER, [TO], MESSAGE)
        assert smtp.sessions_opened == 1  # no automatic second attempt
    assert caught.value.step == "data" and not caught.value.permanent


def test_one_connection_carries_many_mails(start):
    server = start()
    with SmtpSession(config(server)) as smtp:
        for _ in range(3):
            smtp.send(SENDER, [TO], MESSAGE)
    assert smtp.sessions_opened == 1
    assert [len(c.messages) for c in server.handler.connections] == [3]


def withdraws() -> bool:
    return False


def cannot_tell() -> bool:
    raise RuntimeError("database unreachable")


@pytest.mark.parametrize("go_ahead", [withdraws, cannot_tell])
@pytest.mark.parametrize("size", [0, 300_000], ids=["small", "several-writes"])
def test_a_mail_withdrawn_before_its_final_dot_never_arrives_and_the_next_one_does(
    start, go_ahead, size
):
    server = start()
    body = MESSAGE + b"x" * size + b"\r\n"
    asked = []

    def asking() -> bool:
        asked.append(True)
        return go_ahead()

    with SmtpSession(config(server)) as smtp:
        with pytest.raises(SmtpWithdrawnError) as caught:
            smtp.send(SENDER, [TO], body, go_ahead=asking)
        smtp.send(SENDER, ["bob@example.test"], MESSAGE, go_ahead=lambda: True)
    assert caught.value.step == "data" and len(asked) == 1  # once, before the last write
    assert smtp.sessions_opened == 2  # the withdrawn one's connection was dropped mid-DATA
    assert server.handler.messages == [Message(SENDER, ["bob@example.test"], MESSAGE)]


@pytest.mark.parametrize(
    "options",
    [
        {"handler": RecordingHandler(limit=(1, "421 4.7.0 Too many mails, closing"))},
        {"handler": RecordingHandler(limit=(1, "451 4.7.1 Too many mails on this connection"))},
        {"timeout": 0.5},  # the server drops the idle connection without a word
    ],
    ids=["421", "451-limit", "idle-close"],
)
def test_reconnects_when_the_server_ends_the_connection(start, options):
    server = start(**options)
    with SmtpSession(config(server)) as smtp:
        smtp.send(SENDER, [TO], MESSAGE)
        time.sleep(1.0 if "timeout" in options else 0)
        smtp.send(SENDER, ["bob@example.test"], MESSAGE)
    assert smtp.sessions_opened == 2
    assert [[m.rcpt_tos for m in c.messages] for c in server.handler.connections] == [
        [[TO]],
        [["bob@example.test"]],
    ]


def test_config_repr_hides_the_password():
    cfg = config(username="user", password=MARKER)
    assert MARKER not in repr(cfg) and MARKER not in str(cfg)


def test_tls_context_must_verify():
    with pytest.raises(ValueError, match="verify"):
        SmtpSession(config(), tls_context=ssl._create_unverified_context())  # noqa: S323


def test_errors_read_well():
    error = SmtpTemporaryError("temporarily refused", step="mail", code=451, reply="4.3.0 Later")
    assert str(error) == "mail: temporarily refused (451 4.3.0 Later)"
    assert isinstance(error, SmtpError) and not error.permanent
