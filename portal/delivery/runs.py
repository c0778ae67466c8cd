"""One session's work in a lane: claim due mail under a token, send it, claim again."""

import logging
import secrets
import time
from collections.abc import Callable, Sequence

from flask import current_app

from portal.delivery.batch import Batch
from portal.delivery.signing import signing_scope
from portal.extensions import db
from portal.models import Company
from portal.outbox import handoff, store
from portal.settings.versioned import Current, resolve_current

log = logging.getLogger(__name__)


def new_token() -> str:
    return secrets.token_hex(16)


class LaneRun:
    """Delivers a lane's due mail over one SMTP connection at a time, until none is due.

    Mail whose settings point elsewhere now (the company changed them, or it was queued
    before lanes) is given back untried to the lane of its settings in force.
    """

    def __init__(
        self,
        lane: str | None,
        token: str | None = None,
        ids: Sequence[int] = (),
        keep_going: Callable[[], bool] = lambda: True,
    ):
        config = current_app.config
        self.lane, self.token, self.ids = lane, token or new_token(), list(ids)
        self.keep_going = keep_going
        self.claim_size = config["MAIL_CLAIM_BATCH"]
        self.lease_seconds = config["MAIL_LEASE_SECONDS"]
        self.current: dict[int | None, Current] = {}
        self.batch: Batch | None = None
        self.sent = 0

    def run(self) -> int:
        """Send until the lane has no due mail (or the server fails); how many were tried."""
        try:
            while self.keep_going():
                asked = time.monotonic()  # the lease runs from the claim statement's start on
                claimed = store.claim(
                    self.token,
                    self.lane,
                    limit=self.claim_size,
                    lease_seconds=self.lease_seconds,
                    ids=self.ids,
                )
                if not claimed:
                    break
                self._deliver(store.load(claimed), asked + self.lease_seconds)
                if self.ids or (self.batch is not None and self.batch.broken):
                    break
        finally:
            if self.batch is not None:
                self.batch.close()
        return self.sent

    def _deliver(self, rows: list, held_until: float) -> None:
        self.current.clear()  # settings saved since the last claim count from this one on
        mine, elsewhere = [], {}
        for row in rows:
            key = self._current(row.company_id).lane
            if key == self.lane or (self.ids and self.batch is None and not mine):
                self.lane = key  # a single mail asked for by id goes wherever it belongs
                mine.append(row)
            else:
                elsewhere.setdefault(key, []).append(row.id)
        db.session.commit()
        for key, ids in elsewhere.items():
            store.release(self.token, ids, lane=key)
        if elsewhere:
            handoff.wake(elsewhere)
        if not mine:
            return
        if self.batch is None:
            settings = self._current(mine[0].company_id).settings
            self.batch = Batch(settings, self.token, _Scopes(self))
        self.batch.send(mine, held_until)
        self.sent += len(mine)

    def _current(self, company_id: int | None) -> Current:
        if company_id not in self.current:
            company = db.session.get(Company, company_id) if company_id else None
            self.current[company_id] = resolve_current(company)
        return self.current[company_id]


class _Scopes(dict):
    """Whose DKIM keys sign each company's mail, looked up as companies come along."""

    def __init__(self, run: LaneRun):
        super().__init__()
        self.run = run

    def __missing__(self, company_id: int | None) -> int | None:
        scope = signing_scope(self.run._current(company_id).settings)
        self[company_id] = scope
        return scope
