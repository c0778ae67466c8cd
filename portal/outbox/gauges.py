"""The outbox's gauges for a scrape: mails by status and the age of the oldest queued mail."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import STATUS_QUEUED, OutboxMessage, as_utc, utcnow
from portal.outbox.queries import STATUSES


class OutboxCollector:
    """Reads the outbox at each scrape (one GROUP BY), in the caller's app context.

    Computed from the database, not counted by a process: every web process answers the
    same figures, and they are right after a restart. Reads only; never commits.
    """

    def collect(self) -> Iterator[Metric]:
        query = select(
            OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at)
        ).group_by(OutboxMessage.status)
        rows = {status: (count, oldest) for status, count, oldest in db.session.execute(query)}
        mails = GaugeMetricFamily(
            "portal_outbox_mails", "Mails in the outbox, by status.", labels=["status"]
        )
        for status in STATUSES:  # every status, 0 included, so a rate never sees a gap
            mails.add_metric([status], rows.get(status, (0, None))[0])
        yield mails
        oldest = rows.get(STATUS_QUEUED, (0, None))[1]
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "portal_outbox_oldest_queued_seconds",
            "Age of the oldest mail waiting for its first attempt (status queued); 0 when none.",
            value=max(age, 0.0),
        )
