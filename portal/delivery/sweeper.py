"""The sweeper: one elected process across all hosts requeues expired claims and purges old mail.

Every worker process runs a `Sweeper` thread (and `portal sweeper` runs one in the
foreground); all of them try the election every MAIL_SWEEP_SECONDS and only the holder
works, so when it dies another takes over within one sweep interval. Freeing this host's
dead processes' places stays in every engine (`Engine._sweep`): only a process on the same
host can tell that a pid has died.
"""

import logging
import signal
import threading
import time

from flask import Flask
from redis.exceptions import RedisError

from portal import redis_client
from portal.delivery import lanes
from portal.delivery.election import Election, election_for
from portal.extensions import db
from portal.outbox import retention, store
from portal.outbox.processes import SWEEPER_KEY

log = logging.getLogger(__name__)

PURGED_KEY = "portal:sweeper:purged"
"""Unix time of the last retention purge, by whichever holder: a takeover does not purge
again before MAIL_RETENTION_EVERY_SECONDS have passed. Without Redis the holder keeps the
time in its own memory, so at worst a new holder purges once more (deleting nothing twice)."""


class Sweeper:
    """Tries the election every sweep interval; while holding it, sweeps and purges when due."""

    def __init__(self, app: Flask):
        self.app = app
        self.interval = app.config["MAIL_SWEEP_SECONDS"]
        self.purge_every = app.config["MAIL_RETENTION_EVERY_SECONDS"]
        self.name = lanes.worker_name()
        self.stopping = threading.Event()
        self.election: Election | None = None
        self.holding = False
        self.purged_here = -float("inf")  # monotonic; used only when Redis cannot say

    def start(self) -> threading.Thread:
        """Run in a daemon thread of this process (the worker's engine)."""
        thread = threading.Thread(target=self.run, name="mail-sweeper", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Until stopped: rounds every interval; a failure is logged and the loop starts over."""
        while not self.stopping.is_set():
            try:
                self._serve()
            except Exception:  # noqa: BLE001 - the database or Redis may be back next round
                log.exception("sweeper failed; starting it again")
                self.resign()
            self.stopping.wait(self.interval)
        self.resign()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            self.round()
            self.stopping.wait(self.interval)

    def round(self) -> bool:
        """One round: take or keep the election, and work if held; whether this process holds it."""
        with self.app.app_context():
            if self.election is None:
                self.election = election_for(db.engine, self.app.instance_path, "sweeper")
            was_holding = self.holding
            if not self.election.hold():
                return False
            if not was_holding:
                log.info("sweeper: %s now sweeps for every host", self.name)
            self.holding = True
            released = store.release_expired()
            if released:
                log.info("sweep: %s mails whose lease ran out released", released)
            self._record(released)
            if self._purge_due():
                retention.purge()
                self._purged()
            return True

    def resign(self) -> None:
        """Give the election up (at once, for the next try of another process)."""
        if self.election is not None:
            try:
                self.election.resign()
            finally:
                self.election, self.holding = None, False

    def _redis(self):
        return redis_client.connection(self.app)

    def _record(self, released: int) -> None:
        fields = {"host": self.name, "at": repr(time.time()), "released": released}
        try:
            self._redis().hset(SWEEPER_KEY, mapping=fields)
        except RedisError as exc:
            log.warning("sweeper's last run not recorded (%s)", exc)

    def _purge_due(self) -> bool:
        try:
            last = self._redis().get(PURGED_KEY)
        except RedisError:
            return time.monotonic() - self.purged_here >= self.purge_every
        return last is None or time.time() - float(last) >= self.purge_every

    def _purged(self) -> None:
        self.purged_here = time.monotonic()
        try:
            self._redis().set(PURGED_KEY, repr(time.time()))
        except RedisError as exc:
            log.warning("retention purge time not recorded (%s)", exc)


def run_foreground(app: Flask) -> None:
    """`portal sweeper`: the elected rounds alone, in this thread, until SIGTERM or Ctrl-C."""
    sweeper = Sweeper(app)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sweeper.stop())
    log.info("sweeper %s started; a round every %s s", sweeper.name, sweeper.interval)
    sweeper.run()
