"""Transport of the SMTP client: smtplib.SMTP with a deadline on every socket operation."""

import math
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from portal.wire.config import SmtpConfig
from portal.wire.errors import (
    SmtpConnectError,
    SmtpDisconnectedError,
    SmtpPermanentError,
    SmtpTimeoutError,
    SmtpTlsError,
    reply_error,
)
from portal.wire.texts import N_
from portal.wire.trace import Trace

WRITE_CHUNK = 64 * 1024  # bytes per write, so a large message gets a timeout per write
MAX_LINE = 8192  # bytes, as smtplib: a longer reply line is not SMTP
_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class Clock:
    """The timeout of the next socket operation: `timeout`, capped by the running deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.until, self.length = timeout, math.inf, 0.0

    @contextmanager
    def per_operation(self, seconds: float | None) -> Iterator[None]:
        """Within the block each operation waits at most `seconds`, if that is shorter."""
        saved = self.timeout
        if seconds is not None:
            self.timeout = min(seconds, saved)
        try:
            yield
        finally:
            self.timeout = saved

    @contextmanager
    def window(self, seconds: float | None) -> Iterator[None]:
        """Run the block under a wall-clock deadline; an earlier, outer one stays in force."""
        saved = self.until, self.length
        if seconds is not None and time.monotonic() + seconds < self.until:
            self.until, self.length = time.monotonic() + seconds, seconds
        try:
            yield
        finally:
            self.until, self.length = saved

    def budget(self, step: str) -> float:
        """Seconds the next operation may take; SmtpTimeoutError once the deadline has passed."""
        left = self.until - time.monotonic()
        if left <= 0:
            raise self.expired(0.0, step)
        return min(self.timeout, left)

    def expired(self, budget: float, step: str) -> SmtpTimeoutError:
        """The error for an operation that used up its `budget` seconds."""
        if budget < self.timeout:
            message = f"per-mail deadline of {self.length:g}s exceeded"
            return SmtpTimeoutError(message, step=step, timeout=self.length)
        return SmtpTimeoutError(
            f"timed out after {self.timeout:g}s", step=step, timeout=self.timeout
        )


class Transport(smtplib.SMTP):
    """smtplib.SMTP with a verified TLS context and a timeout on every socket operation."""

    trace: "Trace | None" = None

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, name: str) -> None:
        self._step = name
        if self.trace is not None:
            self.trace.enter(name)

    def __init__(
        self,
        config: SmtpConfig,
        context: ssl.SSLContext,
        clock: Clock,
        trace: "Trace | None" = None,
    ) -> None:
        super().__init__(local_hostname=config.local_hostname, timeout=config.timeout)
        self.config, self.context, self.clock, self.trace = config, context, clock, trace
        self.step = "connect"
        self.connected = False
        self._buffer = bytearray()

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        """Connect, TLS on connect, and the greeting, under the config's `connect_timeout`."""
        with self.clock.per_operation(self.config.connect_timeout):
            return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self.step = "connect"
        target = self.config.connect_address or host
        budget = self.clock.budget("connect")
        try:
            sock = socket.create_connection((target, port), budget)
        except socket.gaierror as exc:
            message = f"cannot resolve {target}: {exc.strerror}"
            raise SmtpConnectError(message, step="resolve") from exc
        except TimeoutError as exc:
            raise self.clock.expired(budget, "connect") from exc
        except OSError as exc:
            raise SmtpConnectError(f"cannot connect to {host}: {exc}", step="connect") from exc
        self.connected = True
        if self.trace is not None:
            peer, peer_port = sock.getpeername()[:2]
            connected = {"host": peer, "port": peer_port}
            self.trace.detail(N_("connected to %(host)s:%(port)s") % connected)
        if self.config.security == "ssl":
            self.step = "tls"
            sock = self._wrap(sock)
        self.step = "greeting"
        return sock

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        try:
            budget = self.clock.budget("tls")
            sock.settimeout(budget)
            # SNI and the certificate check use the name, also when the socket went to a pinned IP.
            wrapped = self.context.wrap_socket(sock, server_hostname=self.config.host)
            if self.trace is not None:
                self.trace.detail(describe_tls(wrapped))
            return wrapped
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise self.clock.expired(budget, "tls") from exc
            raise

    def start_tls(self) -> None:
        """STARTTLS, refusing to go on in plain text; forget what was learnt before TLS."""
        self.step = "starttls"
        if not self.has_extn("starttls"):
            raise SmtpTlsError("STARTTLS not offered", step="starttls")
        code, reply = self.docmd("STARTTLS")
        if code != 220:
            raise reply_error("starttls", code, reply)
        if self._buffer:  # plaintext pipelined after 220 would be trusted as if encrypted
            raise SmtpTlsError("data injected before the TLS handshake", step="tls")
        self.step = "tls"
        sock, self.sock = self.sock, None
        self.sock = self._wrap(sock)
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features, self.does_esmtp = {}, False

    def login(self, user: str, password: str, *, initial_response_ok: bool = True):
        """smtplib's login, except that the first 535 (credentials refused) ends it.

        smtplib tries the next method after a refusal: one wrong password would count as two
        failed logins against the account, and lock it out twice as fast.
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = self.esmtp_features["auth"].upper().split()
        methods = [m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in advertised]
        if not methods:
            raise smtplib.SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        refused: smtplib.SMTPAuthenticationError | None = None
        for method in methods:
            authobject = getattr(self, "auth_" + method.lower().replace("-", "_"))
            try:
                return self.auth(method, authobject, initial_response_ok=initial_response_ok)
            except smtplib.SMTPAuthenticationError as exc:
                if exc.smtp_code == 535:
                    raise
                refused = exc  # the method itself was refused (504, 534...): try the next
        assert refused is not None
        raise refused

    def _io(self, operation: Callable[..., Any], *args: Any) -> Any:
        try:
            budget = self.clock.budget(self.step)
            self.sock.settimeout(budget)
            return operation(*args)
        except SmtpTimeoutError:
            self.close()
            raise
        except TimeoutError as exc:
            self.close()
            raise self.clock.expired(budget, self.step) from exc
        except OSError as exc:
            self.close()
            raise SmtpDisconnectedError(f"connection lost: {exc}", step=self.step) from exc

    def mail_command(self, sender: str, options: Sequence[str]) -> str:
        """The MAIL FROM line smtplib's mail() would send; SMTPUTF8 switches the encoding."""
        if not (options and self.does_esmtp):
            return f"mail FROM:{smtplib.quoteaddr(sender)}"
        if any(option.lower() == "smtputf8" for option in options):
            if not self.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        return f"mail FROM:{smtplib.quoteaddr(sender)} {' '.join(options)}"

    @staticmethod
    def rcpt_command(recipient: str) -> str:
        """The RCPT TO line smtplib's rcpt() would send."""
        return f"rcpt TO:{smtplib.quoteaddr(recipient)}"

    def write_commands(self, commands: Sequence[str]) -> None:
        """Write the commands in one go (RFC 2920 pipelining); the trace sees each on its own."""
        if any("\r" in command or "\n" in command for command in commands):
            raise ValueError("command contains a line break")
        lines = [f"{command}\r\n".encode(self.command_encoding) for command in commands]
        if self.trace is not None:  # only once all are encoded: the trace shows what went out
            for line in lines:
                self.trace.sent(line)
        self._write(b"".join(lines))

    def send(self, s: bytes | str, before_last: Callable[[], None] | None = None) -> None:
        """Write `s`; `before_last` runs right before the write that ends it (and may raise)."""
        if isinstance(s, str):
            s = s.encode(self.command_encoding)
        if self.trace is not None:
            self.trace.sent(s)
        self._write(s, before_last)

    def _write(self, s: bytes, before_last: Callable[[], None] | None = None) -> None:
        view = memoryview(s)
        for start in range(0, len(view), WRITE_CHUNK):
            if self.sock is None:
                raise SmtpDisconnectedError("not connected", step=self.step)
            if before_last is not None and start + WRITE_CHUNK >= len(view):
                before_last()
            self._io(self.sock.sendall, view[start : start + WRITE_CHUNK])

    def _readline(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE:
                self.close()
                raise SmtpPermanentError("reply line too long", step=self.step)
            chunk = b"" if self.sock is None else self._io(self.sock.recv, 4096)
            if not chunk:
                self.close()
                raise SmtpDisconnectedError("the server closed the connection", step=self.step)
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def getreply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            line = self._readline()
            lines.append(line[4:].strip(b" \t\r\n"))
            if not line[:3].isdigit():
                return -1, b"\n".join(lines)
            if line[3:4] != b"-":
                code, reply = int(line[:3]), b"\n".join(lines)
                if self.trace is not None:
                    self.trace.received(code, reply)
                return code, reply

    def close(self) -> None:
        self._buffer.clear()
        super().close()


def dot_stuffed(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, and the final CRLF "." CRLF."""
    data = _LEADING_DOT.sub(b"..", _EOL.sub(b"\r\n", message))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def describe_tls(sock: ssl.SSLSocket) -> str:
    """Protocol, certificate subject and expiry, as a test-connection step shows them."""
    cert = sock.getpeercert() or {}
    subject = dict(pair for rdn in cert.get("subject", ()) for pair in rdn).get("commonName", "?")
    text = N_("%(protocol)s, certificate for %(subject)s, valid until %(expiry)s")
    return text % {
        "protocol": sock.version(),
        "subject": subject,
        "expiry": cert.get("notAfter", "?"),
    }
