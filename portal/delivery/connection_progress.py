"""A connection test's record in Redis: its sealed request, its steps as they come, its result.

The request (the form values with a typed password) is encrypted with the app's keys and
read once by the job; the job's arguments are ids only, so no secret sits in the queue.
"""

import json
import secrets
import time
from contextlib import suppress
from dataclasses import asdict
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from portal import crypto
from portal.wire import probe
from portal.wire.diagnosis import Diagnosis

REQUEST_TTL_SECONDS = 600  # the sealed request: a typed password lives no longer than this
STATE_TTL_SECONDS = 3600  # the steps and the result, for the panel that polls them
CANCEL_TTL_SECONDS = 900
KEY = "portal:connection-test:{}:{}"
QUEUED, RUNNING, DONE = "queued", "running", "done"


def new_id() -> str:
    """A test id nobody can guess: it names the record, the scope check guards it."""
    return secrets.token_urlsafe(18)


def _key(test_id: str, part: str) -> str:
    return KEY.format(test_id, part)


def seal_request(redis: Redis, test_id: str, request: dict[str, Any]) -> None:
    sealed = crypto.encrypt(json.dumps(request))
    redis.set(_key(test_id, "request"), sealed, ex=REQUEST_TTL_SECONDS)


def take_request(redis: Redis, test_id: str) -> dict[str, Any] | None:
    """The sealed request, deleted as it is read; None once it expired."""
    sealed = redis.getdel(_key(test_id, "request"))
    return None if sealed is None else json.loads(crypto.decrypt(sealed.decode()))


def read_state(redis: Redis, test_id: str) -> dict[str, Any] | None:
    raw = redis.get(_key(test_id, "state"))
    return None if raw is None else json.loads(raw)


def write_state(redis: Redis, test_id: str, state: dict[str, Any]) -> None:
    redis.set(_key(test_id, "state"), json.dumps(state), ex=STATE_TTL_SECONDS)


def request_cancel(redis: Redis, test_id: str) -> None:
    redis.set(_key(test_id, "cancel"), 1, ex=CANCEL_TTL_SECONDS)


def cancel_requested(redis: Redis, test_id: str) -> bool:
    return bool(redis.exists(_key(test_id, "cancel")))


def new_state(user_id: int, company_id: int | None) -> dict[str, Any]:
    """A test just queued, bound to the user who started it and its scope."""
    return {
        "user_id": user_id,
        "company_id": company_id,
        "status": QUEUED,
        "queued_at": time.time(),
        "started_at": None,
        "seconds": None,
        "steps": [],
        "result": None,
        "refusal": None,  # English, with "refusal_params" its values: translated when shown
        "refusal_params": None,
        "server": None,
        "dkim": None,
    }


def steps_data(steps: list[probe.Step]) -> list[dict[str, Any]]:
    """Steps as stored: a running one keeps the wall-clock time it began, for its elapsed time."""
    now = time.time()
    return [
        {
            "name": s.name,
            "label": s.label,
            "ok": s.ok,
            "seconds": s.seconds,
            "since": now - s.seconds if s.ok is None else None,
            "details": list(s.details),
        }
        for s in steps
    ]


def shown_steps(data: list[dict[str, Any]]) -> list[probe.Step]:
    """The stored steps as the panel shows them now: a running one with its time so far."""
    now = time.time()
    return [
        probe.Step(
            s["name"],
            s["label"],
            s["ok"],
            now - s["since"] if s["ok"] is None else s["seconds"],
            tuple(s["details"]),
        )
        for s in data
    ]


def result_data(result: probe.ProbeResult) -> dict[str, Any]:
    d = result.diagnosis
    return {
        "diagnosis": None if d is None else asdict(d),
        "server_reply": result.server_reply,
        "detail": result.detail,
        "transcript": result.transcript,
        "queue_id": result.queue_id,
        "cancelled": result.cancelled,
    }


def shown_result(state: dict[str, Any]) -> probe.ProbeResult:
    data = state["result"]
    return probe.ProbeResult(
        steps=shown_steps(state["steps"]),
        diagnosis=_diagnosis(data["diagnosis"]),
        server_reply=data["server_reply"],
        detail=data["detail"],
        transcript=data["transcript"],
        queue_id=data["queue_id"],
        cancelled=data["cancelled"],
    )


def _diagnosis(data: dict[str, Any] | None) -> Diagnosis | None:
    if data is None:
        return None
    if "problem_text" not in data:  # stored before the texts kept their values apart
        return Diagnosis(data["cause"], data["problem"], data["hint"], None)
    return Diagnosis(**data)


class Report:
    """The job's side: each change of the test written to its state, Redis trouble ignored.

    A lost write only delays what the panel shows; the test goes on.
    """

    def __init__(self, redis: Redis, test_id: str, state: dict[str, Any]) -> None:
        self.redis, self.test_id, self.state = redis, test_id, state

    def _write(self, **changes: Any) -> None:
        self.state.update(changes)
        with suppress(RedisError):
            write_state(self.redis, self.test_id, self.state)

    def started(self) -> None:
        self._write(status=RUNNING, started_at=time.time())

    def steps(self, steps: list[probe.Step]) -> None:
        self._write(steps=steps_data(steps))

    def _done(self, **changes: Any) -> None:
        started = self.state["started_at"] or time.time()
        self._write(status=DONE, seconds=time.time() - started, **changes)

    def finished(self, result: probe.ProbeResult, server: str, dkim: str) -> None:
        self._done(
            steps=steps_data(result.steps), result=result_data(result), server=server, dkim=dkim
        )

    def refused(self, text: str, params: dict[str, str] | None = None) -> None:
        self._done(refusal=text, refusal_params=params or None)

    def cancelled_before_start(self) -> None:
        self._done(result=result_data(probe.ProbeResult(steps=[], cancelled=True)))
