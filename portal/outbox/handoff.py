"""Handing committed mail to the worker: the RQ queue, grouping windows, retries at a time."""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import Flask, current_app
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from portal import redis_client

log = logging.getLogger(__name__)

QUEUE_NAME = "mail"
GROUP_MARKER = "portal:group:{}"
DELIVER = "portal.delivery.deliver"
DELIVER_GROUP = "portal.delivery.deliver_group"
# A job that raised (database down, a bug) is tried again by RQ; the outbox row stays the record.
JOB_RETRY = Retry(max=3, interval=[10, 60, 300])


def mail_queue(app: Flask | None = None) -> Queue:
    return Queue(QUEUE_NAME, connection=redis_client.connection(app), serializer=JSONSerializer)


def job_timeout(app: Flask | None = None) -> int:
    """Seconds an RQ job may run: a full group, each mail bounded by its deadline."""
    config = (app or current_app).config
    return config["MAIL_GROUP_MAX"] * config["MAIL_MAX_DEADLINE_SECONDS"] + 60


def schedule_group(group_key: str) -> None:
    """Flush this group once, a window after its first mail; later mails ride along."""
    config = current_app.config
    window = config["MAIL_GROUP_WINDOW_SECONDS"]
    marker_ms = int((window + 5) * 1000)
    if redis_client.connection().set(GROUP_MARKER.format(group_key), 1, nx=True, px=marker_ms):
        mail_queue().enqueue_in(
            timedelta(seconds=window),
            DELIVER_GROUP,
            group_key,
            job_timeout=job_timeout(),
            retry=JOB_RETRY,
        )


def clear_group_marker(group_key: str) -> None:
    redis_client.connection().delete(GROUP_MARKER.format(group_key))


def hand_off_now(due: Iterable[tuple[int, str | None]]) -> int:
    """Give due mails (id, group key) to RQ now, one job per group; how many jobs went."""
    handed = 0
    groups: set[str] = set()
    for message_id, group_key in due:
        if group_key is not None:
            if group_key in groups:
                continue
            groups.add(group_key)
        handed += hand_off(message_id, group_key, now=True)
    return handed


def hand_off(
    message_id: int, group_key: str | None, at: datetime | None = None, now: bool = False
) -> bool:
    """Give a committed mail to RQ; False when Redis is down (the sweep tries again later).

    `now` skips the grouping window: for mail that has waited long enough already.
    """
    try:
        if group_key is not None and now:
            mail_queue().enqueue(
                DELIVER_GROUP, group_key, job_timeout=job_timeout(), retry=JOB_RETRY
            )
        elif group_key is not None and at is None:
            schedule_group(group_key)
        elif at is not None:
            mail_queue().enqueue_at(
                at, DELIVER, message_id, job_timeout=job_timeout(), retry=JOB_RETRY
            )
        else:
            mail_queue().enqueue(DELIVER, message_id, job_timeout=job_timeout(), retry=JOB_RETRY)
    except RedisError as exc:
        log.warning("mail %s not handed to the worker (%s); the sweep will", message_id, exc)
        return False
    return True
