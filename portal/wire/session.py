"""SMTP client: one verified, deadline-bounded connection that delivers many mails."""

import base64
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Self

from portal.wire.config import SmtpConfig, make_tls_context
from portal.wire.errors import (
    SmtpConnectError,
    SmtpDisconnectedError,
    SmtpError,
    SmtpPermanentError,
    SmtpRecipientsRefusedError,
    SmtpTimeoutError,
    SmtpUnknownOutcomeError,
    SmtpWithdrawnError,
    reply_error,
    secrets_of,
    text,
    typed_errors,
)
from portal.wire.pipeline import Pipeline
from portal.wire.trace import Trace
from portal.wire.transport import Clock, Transport, dot_stuffed

QUIT_TIMEOUT = 5.0  # seconds: a slow goodbye must not hold a worker once the mail is handled
_IGNORED = (SmtpError, smtplib.SMTPException, OSError)  # while tidying up after the real work


@dataclass(frozen=True)
class Delivery:
    """What the server said to one accepted mail."""

    accepted: tuple[str, ...]
    refused: Mapping[str, tuple[int, str]]
    reply: str  # e.g. "250 2.0.0 Ok: queued as ABC"
    code: int


class SmtpSession:
    """One SMTP connection, reopened when needed, that sends many mails: `with SmtpSession(c):`."""

    def __init__(
        self,
        config: SmtpConfig,
        deadline: float | None = None,
        tls_context: ssl.SSLContext | None = None,
        trace: Trace | None = None,
    ) -> None:
        if tls_context is not None and not (
            tls_context.verify_mode == ssl.CERT_REQUIRED and tls_context.check_hostname
        ):
            raise ValueError("tls_context must verify the certificate and the host name")
        self.config = config
        self.deadline = deadline  # seconds of wall clock for open() and for each send()
        self.sessions_opened = 0
        plain = config.security == "none"
        self._context = tls_context or (
            None if plain else make_tls_context(config.ca_file, config.ca_data)
        )
        self._clock = Clock(config.timeout)
        self._transport: Transport | None = None
        self._latest: Transport | None = None  # also while opening, for abort()
        self._sent_on_connection = 0
        self._phase = "closed"
        self._secrets = secrets_of(config.username, config.password)
        self.trace = trace
        if trace is not None:
            trace.secrets = self._secrets

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS if configured, EHLO again, log in."""
        if self._transport is None:
            with self._clock.window(self.deadline):
                self._open()

    def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        message: bytes,
        go_ahead: Callable[[], bool] | None = None,
    ) -> Delivery:
        """Send one mail, reconnecting once if the server dropped us before the DATA phase.

        `go_ahead` is asked right before the write that carries the final dot, the point after
        which the mail is delivered: False (or an error) withdraws it (SmtpWithdrawnError).
        """
        if not recipients:
            raise ValueError("no recipients")
        if any(c in a for a in [envelope_from, *recipients] for c in "\r\n\0"):
            raise SmtpPermanentError("address contains a line break", step="mail")
        with self._clock.window(self.deadline):
            try:
                return self._attempt(envelope_from, recipients, message, go_ahead)
            except SmtpError as exc:
                if not self._may_retry(exc):
                    raise
            self._drop()
            return self._attempt(envelope_from, recipients, message, go_ahead)

    def close(self) -> None:
        """Say QUIT and close; errors are ignored, the mails are already accounted for."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        transport.step = "quit"
        with self._clock.window(QUIT_TIMEOUT), suppress(*_IGNORED):
            transport.docmd("QUIT")
        transport.close()

    def abort(self) -> None:
        """From another thread: shut the socket down, so a read or write waiting on it ends now."""
        transport = self._latest
        sock = transport.sock if transport is not None else None
        if sock is not None:
            with suppress(OSError):
                # The plain socket's shutdown: an SSLSocket's would tear its TLS state away
                # from under the thread reading it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _open(self) -> None:
        self._phase = "open"
        implicit = self.config.security == "ssl"
        transport = Transport(self.config, self._context, self._clock, self.trace)
        self._latest = transport
        try:
            with typed_errors(lambda: transport.step, self._secrets):
                try:
                    code, reply = transport.connect(self.config.host, self.config.port)
                finally:
                    self.sessions_opened += transport.connected
                if code != 220:
                    raise reply_error("greeting", code, reply)
                transport.step = "ehlo"
                transport.ehlo_or_helo_if_needed()
                if self.config.security == "starttls":
                    transport.start_tls()
                    transport.step = "ehlo"
                    transport.ehlo_or_helo_if_needed()
                if self.config.username:
                    transport.step = "auth"
                    self._login(transport)
        except BaseException as exc:
            transport.close()
            if isinstance(exc, SmtpTimeoutError) and exc.step == "greeting" and not implicit:
                # An implicit-TLS port waits for our ClientHello as we wait for its greeting.
                exc.message += ' (if this port expects implicit TLS, use security "ssl")'
                exc.args = (exc.message,)
            raise
        self._transport, self._sent_on_connection = transport, 0

    def _login(self, transport: Transport) -> None:
        if self.config.token_source is not None:
            self._login_xoauth2(transport)
            return
        try:
            transport.login(self.config.username or "", self.config.password or "")
        finally:
            transport.password = ""  # smtplib keeps it on the object; it is needed no longer

    def _login_xoauth2(self, transport: Transport) -> None:
        if not transport.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        token = self.config.token_source(None)
        try:
            self._xoauth2(transport, token)
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code != 535:
                raise
            # Revoked or expired early although cached: one fresh token, one more try.
            self._xoauth2(transport, self.config.token_source(token))

    def _xoauth2(self, transport: Transport, token: str) -> None:
        initial = f"user={self.config.username or ''}\x01auth=Bearer {token}\x01\x01"
        self._secrets[:0] = [base64.b64encode(initial.encode()).decode(), token]
        # On a refused token the server sends a JSON challenge; the empty answer ends the exchange.
        transport.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")

    def _attempt(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        go_ahead: Callable[[], bool] | None,
    ) -> Delivery:
        if self._transport is None:
            self._open()
        transport = self._transport
        assert transport is not None
        try:
            with typed_errors(lambda: transport.step, self._secrets):
                return self._transaction(transport, sender, recipients, message, go_ahead)
        except SmtpError as exc:
            self._recover(exc)
            if self._phase == "reply" and isinstance(exc, SmtpTimeoutError | SmtpConnectError):
                raise SmtpUnknownOutcomeError.after(exc) from exc
            raise

    def _transaction(
        self,
        transport: Transport,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        go_ahead: Callable[[], bool] | None,
    ) -> Delivery:
        self._phase = "envelope"
        transport.command_encoding = "ascii"
        transport.step = "mail"
        mail = transport.mail_command(sender, _mail_options(transport, sender, recipients, message))
        envelope = Pipeline(transport, [mail, *map(transport.rcpt_command, recipients), "DATA"])
        code, reply = envelope.reply()
        if code != 250:
            raise envelope.settled(reply_error("mail", code, reply))
        transport.step = "rcpt"
        accepted, refused = [], {}
        for rcpt in recipients:
            code, reply = envelope.reply()
            if code in (250, 251):
                accepted.append(rcpt)
            elif code == 421:
                raise reply_error("rcpt", code, reply)
            else:
                refused[rcpt] = (code, text(reply))
        if not accepted:
            # A pipelined DATA is answered 503/554 now; the content is never sent.
            raise envelope.settled(SmtpRecipientsRefusedError.from_refusals(refused))
        transport.step = "data"
        code, reply = envelope.reply()
        if code != 354:
            raise reply_error("data", code, reply)
        self._phase = "content"
        transport.send(dot_stuffed(message), None if go_ahead is None else _asking(go_ahead))
        self._phase = "reply"
        code, reply = transport.getreply()
        self._phase = "done"
        self._sent_on_connection += 1
        if code != 250:
            raise reply_error("data", code, reply)
        return Delivery(tuple(accepted), refused, f"{code} {text(reply)}".strip(), code)

    def _may_retry(self, exc: SmtpError) -> bool:
        # Only before any message byte went out: a retry after that can deliver twice.
        if self._phase != "envelope":
            return False
        if isinstance(exc, SmtpDisconnectedError) or exc.code == 421:
            return True
        # A 4xx at MAIL after earlier mails on this connection is a per-connection limit.
        limited = exc.step == "mail" and exc.code is not None and 400 <= exc.code < 500
        return limited and self._sent_on_connection > 0

    def _recover(self, exc: SmtpError) -> None:
        """Leave the connection ready for the next mail, or drop it if its state is unknown."""
        transport = self._transport
        if transport is not None and transport.sock is not None and exc.code not in (None, 421):
            with suppress(*_IGNORED):
                if transport.docmd("RSET")[0] == 250:
                    return
        self._drop()

    def _drop(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


def _asking(go_ahead: Callable[[], bool]) -> Callable[[], None]:
    """The last check before the final dot: SmtpWithdrawnError unless `go_ahead` says yes."""

    def check() -> None:
        try:
            going = go_ahead()
        except Exception as exc:  # noqa: BLE001 - unsure counts as no: the dot stays unsent
            raise SmtpWithdrawnError(f"withdrawn: {exc}", step="data") from exc
        if not going:
            raise SmtpWithdrawnError("withdrawn before the final dot", step="data")

    return check


def _mail_options(
    transport: Transport, sender: str, recipients: Sequence[str], message: bytes
) -> list[str]:
    options = []
    if transport.has_extn("size"):
        options.append(f"SIZE={len(message)}")
    if not message.isascii() and transport.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not all(address.isascii() for address in [sender, *recipients]):
        options.append("SMTPUTF8")  # mail_command raises if the server lacks it
    return options
