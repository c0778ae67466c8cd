"""The crash bound: SIGKILL the portal's worker mid-drain, restart it, count what arrived."""

import threading
import time
from collections import Counter
from email.parser import BytesHeaderParser

from _common import STALL_SECONDS, Workers, free_port
from _portal import Portal

# Short enough that the sweep takes back a killed worker's mails within seconds.
IMPATIENT_SWEEP = {
    "MAIL_LEASE_SECONDS": "5",
    "MAIL_SWEEP_SECONDS": "1",
    "MAIL_HANDOFF_GRACE_SECONDS": "5",
}


class Recorder:
    """An aiosmtpd server on loopback that keeps the Message-ID of every mail it accepts."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self._lock = threading.Lock()
        self._parser = BytesHeaderParser()
        self.port = free_port()
        self.controller = None

    async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Record the mail's Message-ID, then accept it."""
        message_id = self._parser.parsebytes(envelope.content).get("Message-ID", "")
        with self._lock:
            self.message_ids.append(message_id.strip())
        return "250 2.0.0 Ok: recorded"

    def __enter__(self) -> "Recorder":
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.controller is not None:
            self.controller.stop()


def crash_bound(portal: Portal, n: int, kills: int, sink_port: int) -> dict:
    """Queue n mails, drain them with `kills` SIGKILLs of the worker's group, count arrivals.

    Lost: queued Message-IDs that never arrived. Duplicated: arrivals beyond the first.
    """
    from portal import outbox
    from portal.extensions import db
    from portal.models import OutboxMessage

    portal.reset()
    with Recorder() as recorder:
        portal.point_at(recorder.port)
        try:
            for i in range(n):
                outbox.send(None, **portal.mail(i))
            queued = set(db.session.scalars(db.select(OutboxMessage.message_id)))
            db.session.rollback()
            env = {**portal.worker_env, **IMPATIENT_SWEEP}
            workers = Workers(portal.work, 1, f"crash-{portal.kind}", env)
            killed_at: list[int] = []
            try:
                for k in range(kills):
                    workers.start()
                    # Spread the kills over the first half of the drain, each mid-batch.
                    target = (k + 1) * n // (2 * kills + 2)
                    portal.wait_sent(target, workers, poll=0.005)
                    workers.kill()
                    killed_at.append(portal.count())
                workers.start()
                _wait_final(portal, n, workers)
            finally:
                workers.stop()
            time.sleep(0.5)  # a last reply in flight reaches the recorder's list
        finally:
            portal.point_at(sink_port)
        arrived = Counter(recorder.message_ids)
    return {
        "queued": len(queued),
        "arrivals": sum(arrived.values()),
        "lost": len(queued - set(arrived)),
        "duplicated": sum(c - 1 for c in arrived.values() if c > 1),
        "strangers": len(set(arrived) - queued),
        "killed_at": killed_at,
        "statuses": portal.statuses(),
    }


def _wait_final(portal: Portal, n: int, workers: Workers) -> None:
    final = ("sent", "failed", "unknown")
    last_progress, seen = time.monotonic(), -1
    while (done := sum(portal.statuses().get(s, 0) for s in final)) < n:
        if done != seen:
            seen, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            raise RuntimeError(f"crash run stalled at {done}/{n} final: {portal.statuses()}")
        workers.check()
        time.sleep(0.05)
