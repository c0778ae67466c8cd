"""The delivery worker: a pool of RQ workers, each running the delivery engine beside its jobs."""

import logging
import os

from flask import Flask
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.worker_pool import WorkerPool

from portal import logs, redis_client
from portal.core import create_core_app
from portal.delivery.engine import Engine
from portal.outbox import handoff

log = logging.getLogger(__name__)
DEFAULT_PROCESSES = 2


class PortalWorker(SimpleWorker):
    """An RQ worker (no fork per job) whose process also runs the delivery engine's threads.

    The engine finds due mail in the outbox itself, so delivery needs neither RQ's
    scheduler lock nor a job per mail; RQ runs the other jobs (a reset request's lookup).
    """

    app: Flask | None = None

    def work(self, *args, **kwargs) -> bool:
        PortalWorker.app = create_core_app()  # once per process, after the pool's fork
        engine = Engine(PortalWorker.app)
        engine.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            engine.stop()

    def execute_job(self, job, queue):
        if PortalWorker.app is None:
            PortalWorker.app = create_core_app()
        with PortalWorker.app.app_context(), logs.bound(job_id=job.id):
            return super().execute_job(job, queue)


def main(processes: int | None = None) -> None:
    """Start a pool of workers on the mail queue until stopped."""
    processes = processes or int(os.environ.get("PORTAL_WORKER_PROCESSES", DEFAULT_PROCESSES))
    app = create_core_app()
    pool = WorkerPool(
        [handoff.QUEUE_NAME],
        connection=redis_client.connection(app),
        num_workers=processes,
        worker_class=PortalWorker,
        serializer=JSONSerializer,
    )
    pool.start(burst=False)
