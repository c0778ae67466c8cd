"""The connection test as a worker's job: started by a request, run by the worker, cancellable.

The request answers at once; the worker's RQ side runs the test and writes each step to
Redis, where the panel polls them. One test per company (and one for the global page) runs
at a time: the request takes the lock, the job holds it while it runs and lets it go.
"""

import logging
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from portal import redis_client
from portal.delivery import connection_progress as progress
from portal.delivery.connection_check import TestRefusedError, lock_key, prepare, run
from portal.extensions import db
from portal.models import Company, MailConfig, User
from portal.outbox import handoff
from portal.wire import probe
from portal.wire.texts import N_

log = logging.getLogger(__name__)

# Stored in English in the test's state and translated when shown.
MSG_RUNNING = N_("A test of these settings is already running: wait for it.")
MSG_NO_QUEUE = N_("The test cannot start: the queue (Redis) is unreachable. Try again later.")
MSG_LOST = N_("The worker stopped during the test (it was restarted or killed): test again.")
MSG_WORKER_FAILED = N_("The test failed in the worker: try again; if it persists, tell us.")
MSG_NO_WORKER = N_("No worker is running: start worker.py.")
MSG_WORKERS_BUSY = N_("Waiting for a worker: all are busy, the test starts when one is free.")
MSG_WAITING = N_("Waiting for a worker…")
CANCEL_POLL_SECONDS = 0.25  # how soon a running test hears of its cancel
WAIT_NOTICE_SECONDS = 3  # a queued test says it waits for a worker after this long
NO_WORKER_SECONDS = 30  # ... and that none is running, if none is, after this long
# The lock outlives a worker's pickup as well as the test itself, which opens and sends under
# the timeout each; the job renews it for the run when it starts.
PICKUP_SECONDS = 60


def _run_seconds(timeout: int) -> int:
    return int(timeout * 2 + 30)


def start(
    values: dict[str, Any],
    typed_password: str,
    saved: MailConfig | None,
    company: Company | None,
    user: User,
    recipient: str,
) -> str:
    """Queue a test of these values; its id. TestRefusedError (at once) when it cannot start."""
    settings = prepare(values, typed_password, saved, company, user, recipient).settings
    company_id = company.id if company is not None else None
    test_id = progress.new_id()
    try:
        redis = redis_client.connection()
        ttl = _run_seconds(settings.timeout_seconds) + PICKUP_SECONDS
        if not redis.set(lock_key(company_id), test_id, nx=True, ex=ttl):
            raise TestRefusedError(MSG_RUNNING, 429)
        sealed = {"values": values, "password": typed_password, "recipient": recipient}
        progress.seal_request(redis, test_id, sealed)
        state = progress.new_state(user.id, company_id)
        progress.write_state(redis, test_id, {**state, "timeout": settings.timeout_seconds})
        handoff.mail_queue().enqueue(
            perform,
            test_id,
            company_id,
            saved.id if saved is not None else None,
            user.id,
            job_timeout=_run_seconds(settings.timeout_seconds) + 60,
            ttl=progress.REQUEST_TTL_SECONDS,  # the request is gone after this: so is the job
            result_ttl=60,
            failure_ttl=3600,
        )
    except RedisError as exc:
        log.warning("connection test not started: Redis is unreachable (%s)", exc)
        raise TestRefusedError(MSG_NO_QUEUE, 503) from exc
    return test_id


def state_for(test_id: str, user: User, company: Company | None) -> dict[str, Any] | None:
    """The test's state if this user started it in this scope; None otherwise (a 404)."""
    state = progress.read_state(redis_client.connection(), test_id)
    company_id = company.id if company is not None else None
    if state is None or state["user_id"] != user.id or state["company_id"] != company_id:
        return None
    started, bound = state["started_at"], _run_seconds(state.get("timeout") or 180) + 60
    if state["status"] == progress.RUNNING and started and time.time() - started > bound:
        # Past the job's own timeout: its worker is gone, and the panel must not poll forever.
        return {**state, "status": progress.DONE, "refusal": MSG_LOST, "refusal_params": None}
    return state


def waiting(state: dict[str, Any]) -> str | None:
    """What a queued test says about the worker it waits for, once it has waited a while."""
    waited = time.time() - state["queued_at"]
    if state["status"] != progress.QUEUED or waited < WAIT_NOTICE_SECONDS:
        return None
    if waited >= NO_WORKER_SECONDS:
        queue = handoff.mail_queue()
        if Worker.count(connection=queue.connection, queue=queue) == 0:
            return MSG_NO_WORKER
        return MSG_WORKERS_BUSY
    return MSG_WAITING


def cancel_asked(test_id: str) -> bool:
    return progress.cancel_requested(redis_client.connection(), test_id)


def cancel(test_id: str, state: dict[str, Any], company: Company | None) -> dict[str, Any]:
    """Ask the test to stop; one still queued is cancelled now. The state to show."""
    redis = redis_client.connection()
    progress.request_cancel(redis, test_id)
    if state["status"] == progress.QUEUED:
        # The job, if a worker takes it yet, sees the cancel before anything else.
        report = progress.Report(redis, test_id, state)
        report.cancelled_before_start()
        redis.delete(progress.KEY.format(test_id, "request"))
        _release(redis, company.id if company is not None else None, test_id)
    return state


def perform(test_id: str, company_id: int | None, config_id: int | None, user_id: int) -> None:
    """RQ job: run the test sealed under `test_id`, reporting each step, then release the lock."""
    redis = redis_client.connection()
    state = progress.read_state(redis, test_id)
    request = progress.take_request(redis, test_id)
    if state is None or request is None or state["status"] == progress.DONE:
        log.info("connection test %s expired or cancelled before it ran", test_id)
        return
    report = progress.Report(redis, test_id, state)
    if progress.cancel_requested(redis, test_id):
        report.cancelled_before_start()
        _release(redis, company_id, test_id)
        return
    user = db.session.get(User, user_id)
    company = db.session.get(Company, company_id) if company_id is not None else None
    saved = db.session.get(MailConfig, config_id) if config_id is not None else None
    timeout = int(request["values"].get("timeout_seconds") or 60)
    if not _hold(redis, company_id, test_id, _run_seconds(timeout)):
        report.refused(MSG_RUNNING)
        return
    try:
        report.started()
        _run(redis, test_id, report, request, saved, company, user)
    except Exception:
        report.refused(MSG_WORKER_FAILED)
        raise
    finally:
        db.session.rollback()
        _release(redis, company_id, test_id)


def _run(redis: Redis, test_id: str, report: progress.Report, request, saved, company, user):
    stop = probe.Cancel()
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(redis, test_id, stop, done), name=f"cancel-{test_id}", daemon=True
    )
    watcher.start()
    try:
        outcome = run(
            request["values"],
            request["password"],
            saved,
            company,
            user,
            request["recipient"],
            progress=report.steps,
            cancel=stop,
        )
    except TestRefusedError as exc:
        report.refused(exc.text, exc.params)
        return
    finally:
        done.set()
        watcher.join()
    db.session.commit()  # the audit row
    report.finished(outcome.result, outcome.server, outcome.dkim)


def _watch(redis: Redis, test_id: str, stop: probe.Cancel, done: threading.Event) -> None:
    """Beside the test: cancel it as soon as its cancel flag appears in Redis."""
    while not done.wait(CANCEL_POLL_SECONDS):
        try:
            if progress.cancel_requested(redis, test_id):
                stop.set()
                return
        except RedisError:
            continue  # the test runs on; a cancel is heard once Redis answers again


def _hold(redis: Redis, company_id: int | None, test_id: str, seconds: int) -> bool:
    """Keep the lock this test's request took (or take it, if it expired) for the run."""
    key = lock_key(company_id)
    held = redis.get(key)
    if held is not None and held.decode() != test_id:
        return False
    if held is None:
        return bool(redis.set(key, test_id, nx=True, ex=seconds))
    return bool(redis.expire(key, seconds))


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def _release(redis: Redis, company_id: int | None, test_id: str) -> None:
    """Let the lock go if this test holds it (another's test keeps its own)."""
    try:
        redis.eval(_RELEASE, 1, lock_key(company_id), test_id)
    except RedisError as exc:  # it expires by itself
        log.warning("connection test lock not released: %s", exc)
