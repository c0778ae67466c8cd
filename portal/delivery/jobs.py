"""The worker's RQ jobs: claim due mails, batch them by SMTP configuration, and the sweep."""

import logging
from collections.abc import Sequence

from flask import current_app
from sqlalchemy import select

from portal.delivery.batch import Batch
from portal.delivery.signing import signing_scope
from portal.extensions import db
from portal.models import FINAL_STATUSES, Company, OutboxMessage
from portal.outbox import handoff, store
from portal.settings.resolution import EffectiveSettings, resolve, session_key

log = logging.getLogger(__name__)


def deliver(message_id: int) -> None:
    """RQ job: deliver one mail, or the due mails of its group."""
    query = select(OutboxMessage.status, OutboxMessage.group_key).where(
        OutboxMessage.id == message_id
    )
    found = db.session.execute(query).first()
    db.session.commit()
    if found is None or found.status in FINAL_STATUSES:
        return
    if found.group_key is not None:
        deliver_group(found.group_key)
        return
    claimed = store.claim(ids=[message_id])
    if claimed:
        _deliver(claimed)


def deliver_group(group_key: str) -> None:
    """RQ job: deliver up to MAIL_GROUP_MAX due mails of a group over one session."""
    handoff.clear_group_marker(group_key)  # mails queued from now on schedule a new flush
    limit = current_app.config["MAIL_GROUP_MAX"]
    claimed = store.claim(group_key=group_key, limit=limit)
    if len(claimed) == limit:
        # More may wait: another worker can take the next session's worth meanwhile.
        handoff.hand_off(claimed[-1], group_key, now=True)
    if claimed:
        _deliver(claimed)


def sweep() -> dict[str, int]:
    """RQ cron job: requeue mails of dead workers and hand stranded mails to RQ again."""
    released = store.release_expired()
    handed = handoff.hand_off_now(store.stranded())
    if released or handed:
        log.info("sweep: %s released from dead workers, %s handed to RQ again", released, handed)
    return {"released": released, "handed": handed}


def _deliver(ids: Sequence[int]) -> None:
    rows = store.load(ids)
    companies: dict[int | None, EffectiveSettings] = {}
    batches: dict[str, tuple[EffectiveSettings, list]] = {}
    for row in rows:
        if row.company_id not in companies:
            company = db.session.get(Company, row.company_id) if row.company_id else None
            companies[row.company_id] = resolve(company)
        settings = companies[row.company_id]
        batches.setdefault(session_key(settings), (settings, []))[1].append(row)
    db.session.commit()
    scopes = {company_id: signing_scope(s) for company_id, s in companies.items()}
    for settings, batch in batches.values():
        Batch(settings, batch, scopes).run()
