"""Real SMTP servers on 127.0.0.1 for the client tests: aiosmtpd recorders and raw-socket stubs."""

import asyncio
import base64
import binascii
import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
DAY = datetime.timedelta(days=1)
PEM = serialization.Encoding.PEM
CertAndKey = tuple[Path, Path]


@dataclass(frozen=True)
class Certs:
    """PEM files of a throwaway CA and of server certificates it signed."""

    ca: Path
    good: CertAndKey  # for localhost and 127.0.0.1
    expired: CertAndKey  # for localhost and 127.0.0.1, expired yesterday
    wrong_host: CertAndKey  # for wrong.example.test only


def _cert(
    names: list[str], days: tuple[int, int], signer: tuple[x509.Certificate, Any] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate valid from now+days[0] to now+days[1]; a self-signed CA if no signer."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer_cert, issuer_key = signer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + days[0] * DAY)
        .not_valid_after(now + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=signer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if signer is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        sans = [
            x509.DNSName(n) if n[0].isalpha() else x509.IPAddress(ipaddress.ip_address(n))
            for n in names
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> CertAndKey:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_path.write_bytes(key.private_bytes(PEM, pkcs8, serialization.NoEncryption()))
    return cert_path, key_path


def make_certs(directory: Path) -> Certs:
    """Write a test CA and good, expired and wrong-host server certificates into `directory`."""
    ca = _cert(["Portal Test CA"], (-1, 30), None)
    local = ["localhost", HOST]
    return Certs(
        ca=_write(directory, "ca", *ca)[0],
        good=_write(directory, "good", *_cert(local, (-1, 1), ca)),
        expired=_write(directory, "expired", *_cert(local, (-9, -1), ca)),
        wrong_host=_write(directory, "wrong", *_cert(["wrong.example.test"], (-1, 1), ca)),
    )


def server_context(cert_and_key: CertAndKey) -> ssl.SSLContext:
    """A server-side TLS context presenting the given certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert_and_key)
    return context


@dataclass
class Message:
    """One mail the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Connection:
    """Everything that happened on one TCP connection."""

    commands: list[tuple[str, bool]] = field(default_factory=list)  # (verb, TLS active?)
    auths: list[tuple[str, bool, bool]] = field(default_factory=list)  # (login, TLS?, success?)
    messages: list[Message] = field(default_factory=list)


class TokenCheck(Protocol):
    """Whether `token` is a live access token for `user`; called with keywords, in any order."""

    def __call__(self, *, user: str, token: str) -> bool: ...


@dataclass
class RecordingHandler:
    """aiosmtpd handler recording each connection; the *_reply fields force given answers."""

    user: str = "user"
    password: str = "secret"  # noqa: S105 - the test server's own account
    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient -> reply
    data_reply: str | None = None  # answer to the final dot instead of 250
    data_delay: float = 0.0  # seconds to wait before answering the final dot
    limit: tuple[int, str] | None = None  # (mails per connection, reply to the next MAIL)
    xoauth2: TokenCheck | None = None  # set: AUTH offers XOAUTH2 only, checked by this
    xoauth2_tokens: list[str] = field(default_factory=list)  # every token AUTH XOAUTH2 presented
    connections: list[Connection] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        """All accepted mails, in order."""
        return [m for c in self.connections for m in c.messages]

    def commands(self) -> list[str]:
        """Every command verb received, over all connections."""
        return [verb for c in self.connections for verb, _tls in c.commands]

    @staticmethod
    def _answer(server: SMTP, reply: str) -> str:
        if reply.startswith("421"):  # 421 means the server closes the channel after replying
            server.loop.call_soon(server.transport.close)
        return reply

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.limit and len(server.record.messages) >= self.limit[0]:
            return self._answer(server, self.limit[1])
        if self.mail_reply:
            return self._answer(server, self.mail_reply)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self._answer(server, self.rcpt_replies[address])
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self._answer(server, self.data_reply)
        message = Message(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        server.record.messages.append(message)
        return f"250 2.0.0 Ok: queued as M{len(self.messages)}"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd authenticator: accept only user/password, and record the attempt."""
        login, password = data.login.decode(), data.password.decode()
        success = (login, password) == (self.user, self.password)
        server.record.auths.append((login, server.tls_active(), success))
        return AuthResult(success=success, handled=False, auth_data=data if success else None)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """aiosmtpd AUTH mechanism: a bearer token, answered the way Gmail answers it."""
        if len(args) > 1:
            try:
                blob: bytes | Any = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False)
        else:
            blob = await server.challenge_auth("")
        if blob is MISSING:  # aiosmtpd has already answered
            return AuthResult(success=False)
        fields = dict(
            f.partition("=")[::2] for f in blob.decode(errors="replace").split("\x01") if f
        )
        user, bearer = fields.get("user", ""), fields.get("auth", "")
        token = bearer.removeprefix("Bearer ")
        self.xoauth2_tokens.append(token)
        check = self.xoauth2
        success = bool(check and bearer.startswith("Bearer ") and check(user=user, token=token))
        server.record.auths.append((user, server.tls_active(), success))
        if success:
            return AuthResult(success=True, message="235 2.7.0 Accepted", auth_data=user)
        # Gmail's failure: a JSON challenge the client must answer (empty) before the 535.
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        if await server.challenge_auth(json.dumps(error, separators=(",", ":"))) is MISSING:
            return AuthResult(success=False)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted."
        )


@dataclass
class FirstTryDeferred(RecordingHandler):
    """Answers 451 to the first final dot of each Message-ID, 250 to any later one."""

    tried: set[bytes] = field(default_factory=set)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        headers = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        found = [h for h in headers.split(b"\r\n") if h.lower().startswith(b"message-id:")]
        if found and found[0] not in self.tried:
            self.tried.add(found[0])
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, telling its handler about each connection and each command."""

    def __init__(self, handler: RecordingHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.record = Connection()
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recorded(verb, method)

    def _recorded(self, verb: str, method: Callable) -> Callable:
        async def run(arg: str | None) -> None:
            self.record.commands.append((verb, self.tls_active()))
            await method(arg)

        return run

    def tls_active(self) -> bool:
        """Whether this connection is encrypted now (STARTTLS done, or implicit TLS)."""
        if self._tls_protocol is not None:
            return True
        return self.transport is not None and bool(self.transport.get_extra_info("ssl_object"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        fresh = self._original_transport is None  # STARTTLS calls this again on the same link
        super().connection_made(transport)
        if fresh:
            self.event_handler.connections.append(self.record)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]  # port 0 was asked for: learn it
        super()._trigger_server()


@dataclass(frozen=True)
class Server:
    """A running test server; `handler` is the RecordingHandler, or a raw server's lines."""

    host: str
    port: int
    handler: Any


@contextlib.contextmanager
def smtp_server(
    handler: RecordingHandler | None = None,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    auth: bool = False,
    **smtp_options: Any,
) -> Iterator[Server]:
    """Run an aiosmtpd server on a free port: plain, STARTTLS or implicit TLS, with AUTH or not.

    With AUTH, the STARTTLS server demands TLS first; the plain one accepts AUTH in clear text.
    A handler with `xoauth2` set gets AUTH XOAUTH2 only; otherwise LOGIN and PLAIN.
    """
    handler = handler or RecordingHandler()
    options: dict[str, Any] = {"hostname": HOST, "port": 0, "ready_timeout": 5, **smtp_options}
    if starttls:
        options.update(tls_context=starttls, require_starttls=require_starttls)
    if auth:
        # aiosmtpd only counts STARTTLS as TLS: on implicit TLS it would never offer AUTH.
        options.update(authenticator=handler.authenticate, auth_require_tls=bool(starttls))
    # aiosmtpd offers every auth_* method of its SMTP class and of the handler.
    excluded = ["LOGIN", "PLAIN"] if auth and handler.xoauth2 else ["XOAUTH2"]
    options.setdefault("auth_exclude_mechanism", excluded)
    controller = _Controller(handler, ssl_context=implicit_tls, **options)
    controller.start()
    handler.connections.clear()  # forget the controller's own readiness probe
    try:
        yield Server(HOST, controller.port, handler)
    finally:
        controller.stop()


def _silent(conn: socket.socket, lines: list[str], stop: threading.Event) -> None:
    stop.wait(30)


def _trickle(conn: socket.socket, lines: list[str], stop: threading.Event) -> None:
    for byte in b"220 slow.example.test ESMTP\r\n":
        if stop.wait(1.0):
            return
        conn.sendall(bytes([byte]))


def _conversation(replies: dict[bytes, bytes]) -> Callable[..., None]:
    """A server answering each verb from `replies` ("{arg}" echoes the argument), else 250."""

    def talk(conn: socket.socket, lines: list[str], stop: threading.Event) -> None:
        conn.sendall(b"220 raw.example.test ESMTP\r\n")
        with conn.makefile("rb") as reader:
            for line in reader:
                lines.append(line.decode().strip())
                verb, _, arg = line.strip().partition(b" ")
                conn.sendall(replies.get(verb.upper(), b"250 OK\r\n").replace(b"{arg}", arg))
                if verb.upper() == b"QUIT":
                    return

    return talk


SCRIPTS: dict[str, Callable[..., None]] = {
    "silent": _silent,  # accepts, never greets
    "trickle": _trickle,  # greets at one byte per second
    # Offers AUTH but no STARTTLS, and carelessly echoes what AUTH sent.
    "no_starttls": _conversation(
        {
            b"EHLO": b"250-raw.example.test\r\n250 AUTH PLAIN\r\n",
            b"AUTH": b"535 5.7.8 Bad credentials: {arg}\r\n",
            b"QUIT": b"221 Bye\r\n",
        }
    ),
    # Pipelines a plaintext reply after "220" to STARTTLS (the CVE-2011-0411 class).
    "starttls_inject": _conversation(
        {
            b"EHLO": b"250-raw.example.test\r\n250 STARTTLS\r\n",
            b"STARTTLS": b"220 Go ahead\r\n250 injected in plain text\r\n",
        }
    ),
}


@contextlib.contextmanager
def raw_server(kind: str) -> Iterator[Server]:
    """Run a thread-per-connection socket server playing SCRIPTS[kind]."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.1)
    stop, lines, threads = threading.Event(), [], []

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client hanging up is expected
            conn.settimeout(10)
            SCRIPTS[kind](conn, lines, stop)

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                threads.append(threading.Thread(target=serve, args=(conn,)))
                threads[-1].start()

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        yield Server(HOST, listener.getsockname()[1], lines)
    finally:
        stop.set()
        acceptor.join()
        for thread in threads:
            thread.join()
        listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.create_server((HOST, 0)) as probe:
        return probe.getsockname()[1]
