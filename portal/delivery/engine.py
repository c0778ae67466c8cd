"""The delivery engine in a worker process: lanes scheduled from the outbox, sessions in threads.

Each lane (SMTP destination) gets at most its configuration's `max_sessions` sessions across
all workers, and a process at most MAIL_SESSIONS_PER_PROCESS, so a server that hangs holds
only its own lane's places while every other lane keeps its turn.
"""

import logging
import threading
import time
from collections import Counter
from datetime import datetime

from flask import Flask
from redis.exceptions import RedisError

from portal import redis_client
from portal.delivery import lanes
from portal.delivery.runs import LaneRun, new_token
from portal.delivery.sweeper import Sweeper
from portal.models import utcnow
from portal.outbox import handoff, store
from portal.settings.resolution import DEFAULT_MAX_SESSIONS

log = logging.getLogger(__name__)
FULL_BACKOFF_SECONDS = 0.5  # a lane whose places are all taken elsewhere is asked again after
SPREAD_SECONDS = 0.5  # how long other processes get to take a busy lane's free places first


class Engine:
    """Starts lane sessions while places are free; a heartbeat keeps their claims alive."""

    def __init__(self, app: Flask):
        config = app.config
        self.app = app
        self.slots = config["MAIL_SESSIONS_PER_PROCESS"]
        self.poll_seconds = config["MAIL_POLL_SECONDS"]
        self.sweep_seconds = config["MAIL_SWEEP_SECONDS"]
        self.lease_seconds = config["MAIL_LEASE_SECONDS"]
        self.window = config["MAIL_GROUP_WINDOW_SECONDS"]
        self.group_max = config["MAIL_GROUP_MAX"]
        self.claim_size = config["MAIL_CLAIM_BATCH"]
        self.worker = lanes.worker_name()
        self.wakeup, self.stopping = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.running: dict[str, str | None] = {}  # token -> lane of this process's sessions
        self.full_until: dict[str, float] = {}
        self.caps: dict[str, int] = {}
        self.first_started: dict[str | None, float] = {}
        self.turn = 0
        # Expired claims and the retention purge are for one elected process of all hosts.
        self.sweeper = Sweeper(app)

    def start(self) -> None:
        for target in (self._loop, self._heartbeat, self._listen):
            name = f"mail-{target.__name__[1:]}"
            threading.Thread(target=target, name=name, daemon=True).start()
        self.sweeper.start()

    def stop(self, wait_seconds: float = 30) -> None:
        """Let running sessions finish their claimed mail, then return."""
        self.sweeper.stop()
        self.stopping.set()
        self.wakeup.set()
        deadline = time.monotonic() + wait_seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)

    def _loop(self) -> None:
        swept = -float("inf")
        while not self.stopping.is_set():
            self.wakeup.clear()
            timeout = self.poll_seconds
            try:
                with self.app.app_context():
                    if time.monotonic() - swept >= self.sweep_seconds:
                        self._sweep()
                        swept = time.monotonic()
                    timeout = self._schedule()
            except Exception:  # noqa: BLE001 - the database may be back at the next round
                log.exception("delivery scheduling failed")
            self.wakeup.wait(timeout)
            time.sleep(0.005)  # wake-ups in a burst are taken as one

    def _sweep(self) -> None:
        """Free at once the places and claims of this host's dead processes (the sweeper's are
        the ones whose lease ran out, on any host)."""
        dead = lanes.dead_here(self.worker)
        released = store.release_claims(dead)
        for token in dead:
            lanes.close_session(token)
        if released:
            log.info("sweep: %s mails of dead workers released", released)

    def _schedule(self) -> float:
        """Start sessions for due lanes; seconds until something else becomes due."""
        now = utcnow()
        scan = lanes.scan(now, self.window, self.group_max)
        due = scan.lanes
        if due:
            self.turn = (self.turn + 1) % len(due)
            due = due[self.turn :] + due[: self.turn]
        with self.lock:  # sessions ending in their threads change it
            local = Counter(self.running.values())
        for lane in sorted(due, key=lambda lane: local[lane.key] > 0):  # idle lanes first
            if len(self.running) >= self.slots:
                break
            if self.full_until.get(lane.key or "", 0) > time.monotonic():
                continue
            have = local[lane.key]
            cap = 1 if lane.key is None else self.caps.get(lane.key, DEFAULT_MAX_SESSIONS)
            # Another session of a lane in this process only once the other processes have
            # had a turn at its places: sessions spread over processes, hence over cores.
            settled = time.monotonic() - self.first_started.get(lane.key, 0) > SPREAD_SECONDS
            more = have < cap and lane.due > have * self.claim_size and settled
            if have == 0 or more:
                if have == 0:
                    self.first_started[lane.key] = time.monotonic()
                self._start(lane.key)
                local[lane.key] += 1
        return _seconds_until(scan.next_due, now, self.poll_seconds)

    def _start(self, lane: str | None) -> None:
        token = new_token()
        with self.lock:
            self.running[token] = lane
        threading.Thread(target=self._session, args=(token, lane), daemon=True).start()

    def _session(self, token: str, lane: str | None) -> None:
        placed = False
        try:
            with self.app.app_context():
                if lane is not None:
                    cap = self.caps[lane] = lanes.cap_of(lane)  # settings may have changed
                    placed = lanes.open_session(token, lane, cap, self.worker, self.lease_seconds)
                    if not placed:
                        self.full_until[lane] = time.monotonic() + FULL_BACKOFF_SECONDS
                        return
                run = LaneRun(lane, token, keep_going=lambda: not self.stopping.is_set())
                run.run()
        except Exception:  # noqa: BLE001 - the claimed mail goes back when its lease ends
            log.exception("delivery session for lane %s failed", lane)
        finally:
            try:
                if placed:
                    with self.app.app_context():
                        lanes.close_session(token)
            except Exception:  # noqa: BLE001 - an unclosed place expires with its heartbeat
                log.exception("could not free a session place")
            finally:
                with self.lock:
                    self.running.pop(token, None)
                self.wakeup.set()

    def _heartbeat(self) -> None:
        """Renew this process's sessions' claims and places, whatever SMTP step they wait in."""
        while not self.stopping.wait(self.lease_seconds / 4):
            with self.lock:
                tokens = list(self.running)
            if not tokens:
                continue
            try:
                with self.app.app_context():
                    lanes.renew_sessions(tokens, self.lease_seconds)
                    store.renew_leases(tokens, self.lease_seconds)
            except Exception:  # noqa: BLE001 - tried again at the next beat
                log.exception("heartbeat failed")

    def _listen(self) -> None:
        """Wake the scheduler when mail is committed; without Redis the poll finds it."""
        while not self.stopping.is_set():
            try:
                connection = redis_client.connection(self.app)
                pubsub = connection.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(handoff.wake_channel(connection))
                while not self.stopping.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        self.wakeup.set()
            except RedisError as exc:
                log.warning("not listening for wake-ups (%s); polling meanwhile", exc)
                self.stopping.wait(1.0)


def _seconds_until(moment: datetime | None, now: datetime, ceiling: float) -> float:
    if moment is None:
        return ceiling
    # A hair late rather than early: the due test runs on the database clock's side of `now`.
    return max(0.0, min(ceiling, (moment - now).total_seconds() + 0.01))
