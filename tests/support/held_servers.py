"""SMTP servers that hold a connection test up: one pausing before MAIL, one that never greets."""

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from support.smtp_servers import HOST, RecordingHandler

HOLD_SECONDS = 120  # a bound for a broken test, not a speed target


@dataclass
class PausingHandler(RecordingHandler):
    """Answers MAIL FROM only once `go` is set: the steps up to EHLO are done, MAIL runs."""

    go: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.waiting.set()
        for _ in range(int(HOLD_SECONDS / 0.05)):
            if self.go.is_set():
                break
            await asyncio.sleep(0.05)
        return await super().handle_MAIL(server, session, envelope, address, options)


@dataclass
class Silent:
    """A server that accepts TCP and never says a word; it notes when the client hangs up."""

    port: int
    accepted: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def silent_server() -> Iterator[Silent]:
    """Accept one connection on loopback, send nothing, and watch for the client closing it."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.1)
    silent = Silent(listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                silent.accepted.set()
                conn.settimeout(0.1)
                while not stop.is_set():
                    try:
                        if conn.recv(4096) == b"":
                            silent.closed.set()
                            return
                    except TimeoutError:
                        continue
                    except OSError:
                        silent.closed.set()
                        return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join()
        listener.close()
