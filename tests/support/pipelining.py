"""SMTP servers on 127.0.0.1 that offer PIPELINING (RFC 2920) or not, for the client tests."""

import contextlib
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session

from support.smtp_servers import HOST, RecordingHandler, Server


@dataclass
class PipeliningHandler(RecordingHandler):
    """RecordingHandler whose EHLO offers PIPELINING or not; it may hang up after the data."""

    offers_pipelining: bool = True
    close_after_data: bool = False  # drop the connection instead of answering the final dot

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a handler with this hook
        if self.offers_pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.close_after_data:
            server.transport.abort()
            return "250 never seen"
        return await super().handle_DATA(server, session, envelope)


class _Segments(socketserver.BaseRequestHandler):
    """Answer each line as a pipelining server does, and record every recv() as it came."""

    server: "_SegmentServer"

    def handle(self) -> None:
        conn, server = self.request, self.server
        conn.settimeout(10)
        with contextlib.suppress(OSError):  # the client hanging up is expected
            conn.sendall(b"220 segments.example.test ESMTP\r\n")
            pending, in_data = b"", False
            while chunk := conn.recv(65536):
                server.chunks.append(chunk)
                *lines, pending = (pending + chunk).split(b"\r\n")
                answers = []
                for line in lines:
                    if in_data:
                        in_data = line != b"."
                        answers += [] if in_data else [b"250 2.0.0 Ok: queued as S1\r\n"]
                        continue
                    answers.append(server.answer(_verb(line)))
                    in_data = answers[-1].startswith(b"354")
                conn.sendall(b"".join(answers))  # one write per chunk, as replies to a group
                if b"QUIT" in map(_verb, lines):
                    return


class _SegmentServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True

    def __init__(self, offers_pipelining: bool, replies: dict[bytes, bytes]) -> None:
        super().__init__((HOST, 0), _Segments)
        self.chunks: list[bytes] = []
        self.replies = replies
        extension = b"250-PIPELINING\r\n" if offers_pipelining else b""
        self.ehlo = b"250-segments.example.test\r\n" + extension + b"250 SIZE 1000000\r\n"

    def answer(self, verb: bytes) -> bytes:
        """The reply to one command: EHLO's features, QUIT's goodbye, `replies`, else 250."""
        if verb == b"EHLO":
            return self.ehlo
        default = {b"DATA": b"354 End data with <CR><LF>.<CR><LF>", b"QUIT": b"221 Bye"}
        return self.replies.get(verb, default.get(verb, b"250 OK")) + b"\r\n"


@contextlib.contextmanager
def segment_server(
    *, offers_pipelining: bool, replies: dict[bytes, bytes] | None = None
) -> Iterator[Server]:
    """Run a server recording each recv() chunk in `handler` (a list of bytes).

    `replies` maps a verb (b"RCPT") to the reply line every such command gets.
    """
    server = _SegmentServer(offers_pipelining, replies or {})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(HOST, server.server_address[1], server.chunks)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def commands_of(chunk: bytes) -> list[bytes]:
    """The command lines in one received chunk."""
    return [line for line in chunk.split(b"\r\n") if line]


def _verb(line: bytes) -> bytes:
    return line.split(b" ", 1)[0].upper()
