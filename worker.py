"""Runs the RQ worker that delivers queued mail (`worker: python worker.py` in the Procfile)."""

import os

from redis import Redis
from rq import Queue, Worker

from portal import create_app

QUEUE_NAMES = ("mail",)


def main() -> None:
    app = create_app()
    connection = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    with app.app_context():
        queues = [Queue(name, connection=connection) for name in QUEUE_NAMES]
        Worker(queues, connection=connection).work(with_scheduler=True)


if __name__ == "__main__":
    main()
