"""Telling the worker about committed mail: a wake-up on Redis, and the RQ queue of other jobs.

The outbox table is the queue: the worker finds due mail there by lane, so a lost wake-up
(Redis down or restarted) delays mail by one poll of the worker and loses nothing.
"""

import logging
from collections.abc import Iterable

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from portal import redis_client

log = logging.getLogger(__name__)

QUEUE_NAME = "mail"
WAKE_CHANNEL = "portal:mail:wake:{}"  # per database number: channels span all of a server
ANY_LANE = "*"  # a wake-up for mail whose lane the worker decides (queued before lanes)
# Job names of deliveries handed over before lanes: still run if found in a queue.
DELIVER = "portal.delivery.deliver"
DELIVER_GROUP = "portal.delivery.deliver_group"
# A job that raised (database down, a bug) is tried again by RQ; the outbox row stays the record.
JOB_RETRY = Retry(max=3, interval=[10, 60, 300])


def mail_queue(app: Flask | None = None) -> Queue:
    """The RQ queue the worker also serves: jobs besides delivery (a reset request's lookup)."""
    return Queue(QUEUE_NAME, connection=redis_client.connection(app), serializer=JSONSerializer)


def wake_channel(connection: Redis) -> str:
    """The channel the workers of this Redis database listen on."""
    return WAKE_CHANNEL.format(connection.connection_pool.connection_kwargs.get("db", 0))


def wake(lanes: Iterable[str | None], app: Flask | None = None) -> bool:
    """Wake the workers for mail just committed in these lanes: one Redis round trip.

    False when Redis is down: the workers' poll finds the mail a little later.
    """
    names = sorted({lane or ANY_LANE for lane in lanes})
    if not names:
        return True
    try:
        connection = redis_client.connection(app)
        connection.publish(wake_channel(connection), " ".join(names))
    except RedisError as exc:
        log.warning("mail not handed to the worker: no wake-up (%s); its poll finds the mail", exc)
        return False
    return True
