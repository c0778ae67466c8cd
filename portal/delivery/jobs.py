"""Delivery run in the caller's thread: one mail, one lane, everything due, and the sweep.

The worker's engine schedules lanes by itself; these serve the CLI, the tests and RQ jobs
handed over before lanes (they still name `deliver` and `deliver_group`).
"""

import logging

from sqlalchemy import select

from portal.delivery import lanes
from portal.delivery.runs import LaneRun
from portal.extensions import db
from portal.models import FINAL_STATUSES, OutboxMessage, utcnow
from portal.outbox import store

log = logging.getLogger(__name__)


def deliver(message_id: int) -> None:
    """Deliver one mail now, if it is due (RQ job of mail handed over before lanes)."""
    query = select(OutboxMessage.status, OutboxMessage.lane).where(OutboxMessage.id == message_id)
    found = db.session.execute(query).first()
    db.session.commit()
    if found is None or found.status in FINAL_STATUSES:
        return
    LaneRun(found.lane, ids=[message_id]).run()


def deliver_group(group_key: str) -> None:
    """Deliver the due mails of a group (RQ job of mail handed over before lanes)."""
    deliver_lane(group_key)


def deliver_lane(lane: str | None) -> int:
    """Deliver a lane's due mail over one session; how many mails were tried."""
    return LaneRun(lane).run()


def drain() -> int:
    """Deliver everything due now, lane by lane, grouping windows ignored; how many were tried."""
    tried = 0
    while True:
        scan = lanes.scan(utcnow(), 0, 1)
        if not scan.lanes:
            return tried
        round_tried = sum(deliver_lane(lane.key) for lane in scan.lanes)
        if not round_tried and all(lane.key is not None for lane in scan.lanes):
            return tried  # due by the scan, yet none claimable: another worker holds them
        tried += round_tried


def sweep() -> dict[str, int]:
    """Mails of dead workers (lease run out) go back to the queue."""
    released = store.release_expired()
    if released:
        log.info("sweep: %s released from dead workers", released)
    return {"released": released}
