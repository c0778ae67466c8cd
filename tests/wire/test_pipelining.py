"""PIPELINING (RFC 2920): the envelope in one write when offered, the same outcomes either way."""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.pipelining import PipeliningHandler, commands_of, segment_server
from support.smtp_servers import Message, Server, smtp_server

from portal.wire.config import SmtpConfig
from portal.wire.errors import (
    SmtpPermanentError,
    SmtpRecipientsDeferredError,
    SmtpRecipientsRejectedError,
    SmtpTemporaryError,
    SmtpUnknownOutcomeError,
)
from portal.wire.session import SmtpSession
from portal.wire.trace import Trace

SENDER = "app@example.test"
TO, BOB, CAROL, DAVE = (f"{name}@example.test" for name in ("alice", "bob", "carol", "dave"))
MESSAGE = b"From: app@example.test\r\nSubject: Hi\r\n\r\nHello\r\n.a line starting with a dot\r\n"
ENVELOPE = [
    f"mail FROM:<{SENDER}> SIZE={len(MESSAGE)}".encode(),
    f"rcpt TO:<{TO}>".encode(),
    f"rcpt TO:<{BOB}>".encode(),
    b"DATA",
]


@pytest.fixture(params=[True, False], ids=["offers PIPELINING", "does not"])
def offers(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def start(offers: bool) -> Iterator[Callable[..., Server]]:
    """start(options, **handler_fields): an aiosmtpd server offering PIPELINING or not."""
    with contextlib.ExitStack() as stack:

        def run(options: dict[str, Any] | None = None, **fields: Any) -> Server:
            handler = PipeliningHandler(offers_pipelining=offers, **fields)
            return stack.enter_context(smtp_server(handler, **(options or {})))

        yield run


def config(server: Server, **values: Any) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, security="none", timeout=2.0, **values)


def test_mail_rcpt_and_data_arrive_in_one_segment_only_when_pipelining_is_offered(offers):
    with segment_server(offers_pipelining=offers) as server:
        with SmtpSession(config(server)) as smtp:
            for _ in range(2):
                smtp.send(SENDER, [TO, BOB], MESSAGE)
        chunks = list(server.handler)
    envelopes = [
        commands_of(c) for c in chunks if c.upper().startswith((b"MAIL", b"RCPT", b"DATA"))
    ]
    assert envelopes == ([ENVELOPE] if offers else [[c] for c in ENVELOPE]) * 2
    # Per mail, the envelope and the content: 2 writes pipelined, 5 reply by reply.
    assert len(chunks) == 1 + (2 if offers else 5) * 2 + 1  # EHLO ... QUIT


def test_a_pipelined_data_answered_354_without_recipients_drops_the_connection_unsent():
    replies = {b"RCPT": b"550 5.1.1 No such user"}
    with segment_server(offers_pipelining=True, replies=replies) as server:
        with SmtpSession(config(server)) as smtp:
            for opened in (1, 2):
                with pytest.raises(SmtpRecipientsRejectedError) as caught:
                    smtp.send(SENDER, [TO, BOB], MESSAGE)
                assert smtp.sessions_opened == opened  # the next mail gets a fresh connection
        chunks = list(server.handler)
    refusal = (550, "5.1.1 No such user")
    assert caught.value.recipients == {TO: refusal, BOB: refusal}
    # No message, no lone ".", no RSET into the open DATA phase, no QUIT: only hanging up.
    assert [commands_of(c) for c in chunks if not c.upper().startswith(b"EHLO")] == [ENVELOPE] * 2


def test_all_accepted_deliver_the_same_mail(start):
    server = start()
    with SmtpSession(config(server)) as smtp:
        delivery = smtp.send(SENDER, [TO, BOB], MESSAGE)
    assert (delivery.accepted, delivery.refused, delivery.code) == ((TO, BOB), {}, 250)
    assert delivery.reply == "250 2.0.0 Ok: queued as M1"
    assert server.handler.messages == [Message(SENDER, [TO, BOB], MESSAGE)]


def test_refused_recipients_get_the_same_per_recipient_results(start):
    refusals = {BOB: "550 5.1.1 No such user", CAROL: "450 4.2.1 Mailbox busy"}
    server = start(rcpt_replies=refusals)
    with SmtpSession(config(server)) as smtp:
        delivery = smtp.send(SENDER, [TO, BOB, CAROL, DAVE], MESSAGE)
    assert delivery.accepted == (TO, DAVE)
    assert delivery.refused == {
        BOB: (550, "5.1.1 No such user"),
        CAROL: (450, "4.2.1 Mailbox busy"),
    }
    assert server.handler.messages == [Message(SENDER, [TO, DAVE], MESSAGE)]


def test_all_recipients_refused_send_no_content_and_the_connection_goes_on(start):
    server = start(rcpt_replies={BOB: "450 4.2.1 Mailbox busy", CAROL: "550 5.1.1 No such user"})
    with SmtpSession(config(server)) as smtp:
        with pytest.raises(SmtpRecipientsDeferredError) as caught:
            smtp.send(SENDER, [BOB, CAROL], MESSAGE)
        smtp.send(SENDER, [TO], MESSAGE)  # the same connection, after RSET
    assert caught.value.step == "rcpt" and not caught.value.permanent
    assert caught.value.recipients == {
        BOB: (450, "4.2.1 Mailbox busy"),
        CAROL: (550, "5.1.1 No such user"),
    }
    assert smtp.sessions_opened == 1 and "RSET" in server.handler.commands()
    assert server.handler.messages == [Message(SENDER, [TO], MESSAGE)]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("550 5.7.1 Sender rejected", SmtpPermanentError),
        ("451 4.3.0 Try again later", SmtpTemporaryError),
    ],
)
def test_a_refused_sender_is_the_mail_error_and_the_connection_stays_in_step(start, reply, kind):
    server = start(mail_reply=reply)
    with SmtpSession(config(server)) as smtp:
        for _ in range(2):  # out of step, the second MAIL would read a stale RCPT or DATA reply
            with pytest.raises(kind) as caught:
                smtp.send(SENDER, [TO, BOB], MESSAGE)
            assert (caught.value.step, caught.value.code, caught.value.reply) == (
                "mail",
                int(reply[:3]),
                reply[4:],
            )
    assert smtp.sessions_opened == 1 and server.handler.messages == []


def test_421_at_rcpt_is_retried_once_over_a_fresh_connection(start):
    server = start(rcpt_replies={BOB: "421 4.3.2 Shutting down"})
    with SmtpSession(config(server)) as smtp, pytest.raises(SmtpTemporaryError) as caught:
        smtp.send(SENDER, [TO, BOB], MESSAGE)
    assert (caught.value.step, caught.value.code) == ("rcpt", 421)
    assert smtp.sessions_opened == 2 == len(server.handler.connections)
    assert server.handler.messages == []


def test_the_server_hanging_up_after_the_final_dot_is_unknown_never_resent(start):
    server = start(close_after_data=True)
    with SmtpSession(config(server)) as smtp:
        with pytest.raises(SmtpUnknownOutcomeError) as caught:
            smtp.send(SENDER, [TO], MESSAGE)
        assert smtp.sessions_opened == 1
    assert caught.value.step == "data" and not caught.value.permanent
    assert server.handler.commands().count("DATA") == 1


def test_many_mails_go_over_one_connection(start):
    server = start()
    with SmtpSession(config(server)) as smtp:
        replies = [smtp.send(SENDER, [TO, f"r{i}@example.test"], MESSAGE).reply for i in range(5)]
    assert replies == [f"250 2.0.0 Ok: queued as M{i}" for i in range(1, 6)]
    assert smtp.sessions_opened == 1
    assert [[m.rcpt_tos[1] for m in c.messages] for c in server.handler.connections] == [
        [f"r{i}@example.test" for i in range(5)]
    ]


def test_a_per_connection_limit_at_mail_reconnects_and_sends_the_rest(start):
    server = start(limit=(2, "451 4.7.1 Too many mails on this connection"))
    with SmtpSession(config(server)) as smtp:
        for _ in range(4):
            smtp.send(SENDER, [TO], MESSAGE)
    assert smtp.sessions_opened == 2
    assert [len(c.messages) for c in server.handler.connections] == [2, 2]


@pytest.mark.parametrize("offered", [True, False], ids=["SMTPUTF8", "no SMTPUTF8"])
def test_an_international_address_goes_out_in_utf8_only_where_offered(start, offered):
    server = start(options={"enable_SMTPUTF8": offered})
    jorg = "jörg@example.test"
    with SmtpSession(config(server)) as smtp:
        if offered:
            smtp.send(SENDER, [jorg, TO], MESSAGE)
        else:
            with pytest.raises(SmtpPermanentError, match="SMTPUTF8 not supported") as caught:
                smtp.send(SENDER, [jorg, TO], MESSAGE)
            assert caught.value.step == "mail"
    assert server.handler.messages == ([Message(SENDER, [jorg, TO], MESSAGE)] if offered else [])
    assert ("MAIL" in server.handler.commands()) is offered  # refused before a byte went out


def test_the_transcript_records_each_command_and_reply_as_they_crossed(start, offers):
    server = start()
    trace = Trace()
    with SmtpSession(config(server), trace=trace) as smtp:
        smtp.send(SENDER, [TO], MESSAGE)
    mail, rcpt = (f"C: {line.decode()}" for line in ENVELOPE[:2])
    ok, go_ahead = "S: 250 OK", "S: 354 End data with <CR><LF>.<CR><LF>"
    envelope = [mail, rcpt, "C: DATA", ok, ok, go_ahead]
    if not offers:
        envelope = [mail, ok, rcpt, ok, "C: DATA", go_ahead]
    assert trace.transcript[trace.transcript.index(mail) :] == [
        *envelope,
        f"C: <message, {len(MESSAGE) + 4} bytes>",  # a doubled dot, then ".\r\n"
        "S: 250 2.0.0 Ok: queued as M1",
        "C: QUIT",
        "S: 221 Bye",
    ]
    assert [step.name for step in trace.steps][-4:] == ["mail", "rcpt", "data", "quit"]
