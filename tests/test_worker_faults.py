"""The real worker (worker.py) under faults: a hanging server, a slow final dot, SIGKILL, retries.

The time bounds below are what the product promises (another company's mail goes out within
5 s while a server hangs, a retry is never early and comes at its due time), each with a margin
for a loaded machine: correctness bounds, not speed benchmarks.
"""

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from support.factories import configure, queue, row
from support.held_servers import PausingHandler
from support.smtp_servers import FirstTryDeferred, RecordingHandler, raw_server, smtp_server
from support.workers import all_message_ids, message_ids, wait_for, wait_until_final

from portal import redis_client
from portal.extensions import db
from portal.models import (
    STATUS_DEFERRED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    OutboxAttempt,
    OutboxMessage,
    as_utc,
)
from portal.outbox import handoff
from portal.outbox.processes import SWEEPER_KEY
from portal.settings.resolution import DEFAULT_MAX_SESSIONS

LATENCY_BOUND = timedelta(seconds=5)  # the product's bound for a mail while another lane hangs
RETRY_LATE_BOUND = timedelta(seconds=1.5)  # a retry comes this soon after its due time, or sooner
KILLS = 5


def latencies(company) -> list[timedelta]:
    """sent_at - created_at of every mail of a company, as stored."""
    db.session.rollback()
    query = select(OutboxMessage.created_at, OutboxMessage.sent_at).where(
        OutboxMessage.company_id == company.id
    )
    return [as_utc(sent) - as_utc(created) for created, sent in db.session.execute(query)]


def statuses(company) -> Counter:
    db.session.rollback()
    query = select(OutboxMessage.status).where(OutboxMessage.company_id == company.id)
    return Counter(db.session.scalars(query))


def attempts_per_mail() -> dict[int, list[OutboxAttempt]]:
    db.session.rollback()
    made: dict[int, list[OutboxAttempt]] = {}
    for attempt in db.session.scalars(select(OutboxAttempt).order_by(OutboxAttempt.id)):
        made.setdefault(attempt.message_id, []).append(attempt)
    return made


@pytest.mark.parametrize("processes", [1, 2])
def test_a_server_that_never_answers_does_not_delay_another_companys_mail(
    workers, people, processes
):
    workers.env["PORTAL_WORKER_PROCESSES"] = str(processes)
    with raw_server("silent") as hanging, smtp_server() as healthy:
        configure(people.acme, port=hanging.port, timeout_seconds=10)
        configure(people.globex, port=healthy.port)
        running = workers.start_ready()
        queue(people.acme, 20)  # first: its sessions are stuck in the greeting when B's come
        queue(people.globex, 40)
        wait_for(lambda: statuses(people.globex)[STATUS_SENT] == 40, "company B's mail")
        stuck = statuses(people.acme)
        workers.kill(running)  # at once: a stopping worker would wait for the stuck sessions
    assert max(latencies(people.globex)) <= LATENCY_BOUND
    assert len(message_ids(healthy.handler)) == 40
    assert set(stuck) <= {STATUS_QUEUED, STATUS_SENDING, STATUS_DEFERRED}
    assert stuck[STATUS_SENDING] >= 1  # B's mail went out while A's session hung


def test_a_company_that_left_parallel_connections_empty_keeps_sending_after_its_first_session(
    workers, people
):
    with smtp_server() as server:
        configure(people.globex, port=server.port, max_sessions=None)
        workers.start_ready()
        queue(people.globex)
        wait_until_final(1)  # the lane's first session has ended: the engine knows its settings
        queue(people.globex)
        wait_until_final(2)
    assert max(latencies(people.globex)) <= LATENCY_BOUND
    assert len(message_ids(server.handler)) == 2


def test_a_final_dot_answered_after_the_lease_ran_out_is_sent_once(workers, people):
    workers.env.update(MAIL_LEASE_SECONDS="2", MAIL_SWEEP_SECONDS="0.5")
    handler = RecordingHandler(data_delay=6)  # three leases: only the heartbeat keeps the claim
    with smtp_server(handler) as server:
        configure(port=server.port, timeout_seconds=10)
        mails = queue(people.acme, 3)
        workers.start()
        wait_until_final(3)
    assert message_ids(handler) == Counter({m.message_id: 1 for m in mails})
    assert {row(m).status for m in mails} == {STATUS_SENT}
    assert [row(m).attempts for m in mails] == [1, 1, 1]
    assert [len(a) for a in attempts_per_mail().values()] == [1, 1, 1]


def test_a_worker_stopped_past_its_lease_sends_none_of_the_mail_another_worker_took_over(
    workers, people
):
    """SIGSTOP stands for a starved worker: stopped with its first mail's envelope on the wire
    and four more claimed, it wakes after another worker has delivered all five."""
    handler = PausingHandler()  # holds MAIL FROM until `go`: the stop comes mid-transaction
    with smtp_server(handler) as server:
        configure(port=server.port, timeout_seconds=30)
        # The elected sweeper first, sending nothing: a stopped holder would sweep no more.
        workers.env["MAIL_SESSIONS_PER_PROCESS"] = "0"
        workers.start_ready()
        wait_for(lambda: redis_client.connection().exists(SWEEPER_KEY), "the sweeper's round")
        workers.env["MAIL_SESSIONS_PER_PROCESS"] = "8"
        mails = queue(people.acme, 5)
        starved = workers.start()
        assert handler.waiting.wait(30)
        workers.send_signal(starved, signal.SIGSTOP)
        handler.go.set()  # the stopped worker's replies wait in its socket, up to the 354
        workers.start()  # takes the mails over once their lease has run out
        wait_until_final(5)
        workers.send_signal(starved, signal.SIGCONT)
        wait_for(lambda: "claim was lost" in workers.log(starved), "the woken worker's turn")
        time.sleep(1)  # whatever it would still send
    assert message_ids(handler) == Counter({m.message_id: 1 for m in mails})


def test_sigkilled_five_times_mid_drain_loses_nothing_and_resends_only_uncommitted_mail(
    workers, people, app
):
    handler = RecordingHandler(data_delay=0.002)
    with smtp_server(handler) as server:
        configure(port=server.port, group_sends=True)
        queue(people.acme, 1000)
        for _ in range(KILLS):
            progress = len(handler.messages) + 100
            running = workers.start()
            wait_for(lambda until=progress: len(handler.messages) >= until, "delivery to go on")
            workers.kill(running)
        workers.start()
        wait_until_final(1000)
    arrived = message_ids(handler)
    assert set(arrived) == all_message_ids()
    # A kill resends at most the mails accepted but not yet committed: fewer than
    # MAIL_COMMIT_EVERY (20) per session, with the lane's 2 sessions (the default cap) in flight.
    duplicates = sum(arrived.values()) - len(arrived)
    assert duplicates <= KILLS * app.config["MAIL_COMMIT_EVERY"] * DEFAULT_MAX_SESSIONS


def test_a_deferred_mail_is_retried_at_its_due_time_not_at_the_next_poll(workers, people):
    # A 30 s poll: only the engine's own wake-up at the due time can retry within the bound.
    workers.env.update(MAIL_RETRY_INITIAL_SECONDS="3", MAIL_POLL_SECONDS="30")
    with smtp_server(FirstTryDeferred()) as server:
        configure(port=server.port)
        (mail,) = queue(people.acme)  # before the worker: its first scan finds it
        workers.start()
        wait_until_final(1)
    (made,) = attempts_per_mail().values()
    assert [a.status for a in made] == [STATUS_DEFERRED, STATUS_SENT]
    due = as_utc(row(mail).next_attempt_at)
    assert due <= as_utc(made[1].at) <= due + RETRY_LATE_BOUND
    assert len(message_ids(server.handler)) == 1


def test_after_a_sigkill_and_a_restart_new_mail_goes_out_within_five_seconds(workers, people):
    with smtp_server() as server:
        configure(port=server.port)
        first = workers.start_ready()
        queue(people.acme)
        wait_until_final(1)
        workers.kill(first)
        workers.start_ready()
        queue(people.acme)
        wait_until_final(2)
    assert max(latencies(people.acme)) <= LATENCY_BOUND
    assert len(message_ids(server.handler)) == 2


def allowed_attempts(seconds: float, first_delay: float) -> int:
    """The most attempts a mail can have in `seconds` when retries wait first_delay, doubling."""
    attempts, elapsed, delay = 1, 0.0, first_delay
    while elapsed + delay <= seconds:
        attempts, elapsed, delay = attempts + 1, elapsed + delay, delay * 2
    return attempts


def test_sweeps_neither_queue_jobs_nor_retry_mail_ahead_of_its_schedule(workers, people):
    workers.env.update(MAIL_SWEEP_SECONDS="0.5", MAIL_RETRY_INITIAL_SECONDS="1")
    jobs = handoff.mail_queue()

    def queued_jobs() -> list[int]:
        registries = (jobs.scheduled_job_registry, jobs.deferred_job_registry)
        return [jobs.count, *(registry.count for registry in registries)]

    with smtp_server(RecordingHandler(data_reply="451 4.3.0 Try again later")) as server:
        configure(port=server.port)
        queue(people.acme, 300)
        before = queued_jobs()
        started = time.monotonic()
        running = workers.start()
        time.sleep(5)
        workers.kill(running)
        ran = time.monotonic() - started
    assert before == queued_jobs() == [0, 0, 0]
    allowed = allowed_attempts(ran, first_delay=1)  # 3 in 5 s: at 0, 1 and 3 s, not 10 sweeps
    made = attempts_per_mail()
    assert made  # the server was reached: its 451s are what the schedule retries
    assert max(len(a) for a in made.values()) <= allowed
    db.session.rollback()
    assert db.session.scalar(select(func.max(OutboxMessage.attempts))) <= allowed
