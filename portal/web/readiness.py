"""What /readyz looks at: the database and Redis, each within a short timeout; workers, sweeper."""

import logging
import time
from typing import Any

from flask import Flask
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from rq import Worker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from portal import redis_client
from portal.extensions import db
from portal.outbox import processes

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2  # per check: connecting, and the statement or command
UNKNOWN = "unknown"


def _engine(app: Flask) -> Engine:
    """An engine of its own for the probe: the app's URL, a connect and a statement timeout.

    No pool: each probe connects afresh, so it tests what a new request would meet, and a
    probe never waits behind the app's pool.
    """
    engine = app.extensions.get("portal.readiness.engine")
    if engine is None:
        url = db.engine.url
        if url.get_backend_name() == "postgresql":
            milliseconds = CHECK_TIMEOUT_SECONDS * 1000
            connect_args: dict[str, Any] = {
                "connect_timeout": CHECK_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={milliseconds}",
            }
        else:
            connect_args = {"timeout": CHECK_TIMEOUT_SECONDS}  # SQLite's busy wait
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        app.extensions["portal.readiness.engine"] = engine
    return engine


def _redis(app: Flask) -> Redis:
    """A client of the app's Redis with socket timeouts and no retries: a dead one fails fast."""
    client = app.extensions.get("portal.readiness.redis")
    if client is None:
        pool = redis_client.connection(app).connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(
            socket_timeout=CHECK_TIMEOUT_SECONDS,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # redis-py retries 3 times by default
        )
        kwargs.pop("retry_on_error", None)
        client = Redis(connection_pool=ConnectionPool(pool.connection_class, **kwargs))
        app.extensions["portal.readiness.redis"] = client
    return client


def database_ok(app: Flask) -> bool:
    """Whether `SELECT 1` answers within the timeout."""
    try:
        with _engine(app).connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return False
    return True


def redis_ok(app: Flask) -> bool:
    """Whether Redis answers PING within the timeout."""
    try:
        return bool(_redis(app).ping())
    except (RedisError, OSError) as exc:
        log.warning("readiness: Redis unreachable (%s)", type(exc).__name__)
        return False


def workers(app: Flask) -> dict | str:
    """The RQ workers registered (a worker's entry expires when its heartbeats stop)."""
    try:
        found = Worker.all(connection=_redis(app))
    except (RedisError, OSError):
        return UNKNOWN
    beats = [w.last_heartbeat.timestamp() for w in found if w.last_heartbeat is not None]
    newest = round(time.time() - max(beats), 1) if beats else None
    return {"registered": len(found), "last_heartbeat_seconds_ago": newest}


def sweeper(app: Flask) -> dict | str:
    """The sweeper's last run as it recorded it, or "unknown" (not run yet, or Redis down)."""
    try:
        fields = _redis(app).hgetall(processes.SWEEPER_KEY)
    except (RedisError, OSError):
        return UNKNOWN
    run = processes.sweeper_run(fields)
    if run is None or run.at is None:
        return UNKNOWN
    return {
        "host": run.host or UNKNOWN,
        "last_run_seconds_ago": round(time.time() - run.at.timestamp(), 1),
        "released": int(run.released) if run.released.isdigit() else None,
    }
