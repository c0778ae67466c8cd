"""Hearing the workers' wake-ups as a worker does: a subscriber on the test Redis."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask

from portal import redis_client
from portal.outbox import handoff

QUIET_SECONDS = 0.3  # no further wake-up for this long: all of them have arrived


@contextmanager
def wakeups(app: Flask | None = None) -> Iterator[Callable[[], list[list[str]]]]:
    """Subscribe to the wake-up channel; the function given returns the lanes of each heard."""
    connection = redis_client.connection(app)
    listener = connection.pubsub()
    listener.subscribe(handoff.wake_channel(connection))
    # Subscribed once Redis says so: a wake-up published before that would be missed.
    deadline = time.monotonic() + 5
    while (found := listener.get_message(timeout=0.1)) is None or found["type"] != "subscribe":
        assert time.monotonic() < deadline, "Redis did not confirm the subscription"
    heard: list[list[str]] = []

    def collect() -> list[list[str]]:
        while (message := listener.get_message(timeout=QUIET_SECONDS)) is not None:
            if message["type"] == "message":
                heard.append(message["data"].decode().split(" "))
        return heard

    try:
        yield collect
    finally:
        listener.close()
