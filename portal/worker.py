"""The delivery worker: a pool of RQ workers with RQ's scheduler, and the sweeper."""

import logging
import math
import multiprocessing
import os
import time

import rq.worker.base
from flask import Flask
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker_pool import WorkerPool

from portal import redis_client
from portal.app import create_app
from portal.delivery import sweep
from portal.extensions import db
from portal.outbox import handoff, retention

log = logging.getLogger(__name__)
DEFAULT_PROCESSES = 2
# RQ's scheduler looks for due jobs once a second; a group flush is due 2 s after its first
# mail, so a finer look keeps the delay near 2 s instead of up to 3 s.
SCHEDULER_INTERVAL_SECONDS = 0.2


class FineScheduler(RQScheduler):
    """RQ's scheduler loop, looking every SCHEDULER_INTERVAL_SECONDS instead of every second.

    RQ's `interval` also sets its lock's TTL in whole seconds, so only the sleep changes here.
    """

    def work(self):
        self._install_signal_handlers()
        self.register_birth()
        while not self._stop_requested:
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            time.sleep(SCHEDULER_INTERVAL_SECONDS)
        self.stop()


class PortalWorker(SimpleWorker):
    """Runs jobs in its own process (no fork per job) inside the portal's app context."""

    app: Flask | None = None

    def execute_job(self, job, queue):
        if PortalWorker.app is None:
            PortalWorker.app = create_app()  # once per process, after any fork
        with PortalWorker.app.app_context():
            return super().execute_job(job, queue)


def run_sweeper(sweep_seconds: float) -> None:
    """Run the sweep on a fixed interval, and the retention purge daily, in their own process.

    Not RQ's cron: it enqueues with pickle while the mail queue speaks JSON, and the sweep
    must keep running when Redis has lost everything, which is when it is needed most.
    """
    app = create_app()
    purged_at = -math.inf
    while True:
        with app.app_context():
            try:
                sweep()
                if time.monotonic() - purged_at >= app.config["MAIL_RETENTION_EVERY_SECONDS"]:
                    retention.purge()
                    purged_at = time.monotonic()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("sweep failed")
            finally:
                db.session.remove()
        time.sleep(sweep_seconds)


def main(processes: int | None = None) -> None:
    """Start the cron process and a pool of workers on the mail queue until stopped."""
    processes = processes or int(os.environ.get("PORTAL_WORKER_PROCESSES", DEFAULT_PROCESSES))
    rq.worker.base.RQScheduler = FineScheduler  # before the pool forks its workers
    app = create_app()
    connection = redis_client.connection(app)
    sweeper = multiprocessing.Process(
        target=run_sweeper, args=(app.config["MAIL_SWEEP_SECONDS"],), name="sweeper", daemon=True
    )
    sweeper.start()
    pool = WorkerPool(
        [handoff.QUEUE_NAME],
        connection=connection,
        num_workers=processes,
        worker_class=PortalWorker,
        serializer=JSONSerializer,
    )
    try:
        pool.start(burst=False)
    finally:
        sweeper.terminate()
