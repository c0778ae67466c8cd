"""The worker processes as Redis knows them: RQ's registry of live workers, the sweeper's last run.

Read for the queue dashboard. A job is named by its function only: its arguments (a reset
request's address) are never read.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError
from rq import Worker
from rq.serializers import JSONSerializer

from portal import redis_client
from portal.models import as_utc

SWEEPER_KEY = "portal:sweeper"
"""Redis HASH of the elected sweeper's last round: `host` (its worker name, host:namespace:pid),
`at` (unix time, float) and `released` (mails requeued in that round, int). It lives in the
Redis database of the queue; keys, unlike the wake-up's pub/sub channels, are per database
already, so the name has no database suffix."""


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    hostname: str
    pid: int | None
    state: str  # RQ's: idle between jobs, busy in one (delivery runs in threads beside)
    last_heartbeat: datetime | None
    job: str | None  # the function of the job it runs now


@dataclass(frozen=True)
class SweeperRun:
    host: str
    at: datetime | None
    released: str


@dataclass(frozen=True)
class Processes:
    workers: list[WorkerSeen] | None  # None: Redis did not answer
    sweeper: SweeperRun | None  # None: no run recorded (or Redis did not answer)
    problem: str | None = None


def _job_of(worker: Worker) -> str | None:
    try:
        job = worker.get_current_job()
    except (RedisError, ValueError, LookupError):  # the job expired or was removed meanwhile
        return None
    return job.func_name if job is not None else None


def _seen(worker: Worker) -> WorkerSeen:
    return WorkerSeen(
        name=worker.name,
        hostname=worker.hostname or "",
        pid=worker.pid,
        state=worker.get_state() if worker.get_state() != "?" else "unknown",  # RQ's "no state"
        last_heartbeat=as_utc(worker.last_heartbeat) if worker.last_heartbeat else None,
        job=_job_of(worker),
    )


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


def _moment(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def sweeper_run(fields: dict[bytes, bytes]) -> SweeperRun | None:
    """The sweeper's last round from its HASH's fields; None when none is recorded."""
    if not fields:
        return None
    return SweeperRun(
        host=_text(fields.get(b"host")),
        at=_moment(_text(fields.get(b"at"))),
        released=_text(fields.get(b"released")),
    )


def seen() -> Processes:
    """The live RQ workers, by name, and the sweeper's last run; no Redis: says so, raises not."""
    connection = redis_client.connection()
    try:
        workers = Worker.all(connection=connection, serializer=JSONSerializer)
        found = sorted((_seen(worker) for worker in workers), key=lambda w: w.name)
        sweeper = sweeper_run(connection.hgetall(SWEEPER_KEY))
    except RedisError as exc:
        return Processes(None, None, f"Redis did not answer ({type(exc).__name__}).")
    return Processes(found, sweeper)
