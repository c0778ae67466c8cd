"""What PIPELINING saves: the portal's SmtpSession against smtp-sink with and without it.

Two smtp-sinks on loopback, one started with -p (no PIPELINING offered); with --delay, each is
reached through a proxy that holds every chunk that long in each direction, as a network with
a round-trip time of twice the delay would. The runs alternate; medians are printed.
"""

import argparse
import asyncio
import contextlib
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

from portal.wire.config import SmtpConfig
from portal.wire.session import SmtpSession

SINK = "/usr/sbin/smtp-sink"
SENDER, RECIPIENT = "noreply@example.com", "rcpt@example.org"
MESSAGE = b"From: noreply@example.com\r\nSubject: bench\r\n\r\n" + (b"x" * 70 + b"\r\n") * 13


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sink(*options: str) -> Iterator[int]:
    """Run smtp-sink in its own process group on a free port; yield the port."""
    port = free_port()
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    command = [SINK, "-c", *options, *user, f"127.0.0.1:{port}", "1000"]
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield port
    finally:
        os.killpg(process.pid, 15)
        process.wait()


def delaying_proxy(target: int, delay: float) -> int:
    """Forward a loopback port to `target`, each chunk held `delay` seconds; return its port."""
    port, ready = free_port(), threading.Event()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=asyncio.run, args=(serve(),), daemon=True).start()
    ready.wait(10)
    return port


def session_rate(port: int, mails: int) -> float:
    """Mails per second through one SmtpSession."""
    config = SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30)
    start = time.perf_counter()
    with SmtpSession(config) as session:
        for _ in range(mails):
            session.send(SENDER, [RECIPIENT], MESSAGE)
    return mails / (time.perf_counter() - start)


def smtplib_rate(port: int, mails: int) -> float:
    """Mails per second through one smtplib connection (it never pipelines)."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        for _ in range(mails):
            smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)
    return mails / (time.perf_counter() - start)


def main() -> None:
    """Parse the arguments, run the loops alternately, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds, each direction")
    args = parser.parse_args()
    if not os.path.exists(SINK):
        sys.exit(f"{SINK} is missing: apt-get install postfix (see bench/README.md)")
    with sink() as offered, sink("-p") as plain:
        if args.delay:
            offered, plain = delaying_proxy(offered, args.delay), delaying_proxy(plain, args.delay)
        loops: dict[str, tuple[Callable[[int, int], float], int]] = {
            "smtplib, PIPELINING offered (unused)": (smtplib_rate, offered),
            "SmtpSession, PIPELINING offered": (session_rate, offered),
            "SmtpSession, not offered (smtp-sink -p)": (session_rate, plain),
        }
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.runs):
            for name, (loop, port) in loops.items():
                rates[name].append(loop(port, args.mails))
    print(
        f"{args.mails} mails x {args.runs} runs, {len(MESSAGE)} B, "
        f"delay {args.delay * 1000:g} ms each way, nproc={os.cpu_count()}"
    )
    for name, values in rates.items():
        print(
            f"  {name:40} median {statistics.median(values):8.1f}/s"
            f"  (min {min(values):.1f}, max {max(values):.1f})"
        )
    _, pipelined, reply_by_reply = (statistics.median(values) for values in rates.values())
    print(f"  pipelined / reply by reply = {pipelined / reply_by_reply:.2f}")


if __name__ == "__main__":
    main()
