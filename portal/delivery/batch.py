"""A batch: mails of one SMTP configuration over one session, outcomes committed in groups."""

import logging
import time
from collections import Counter
from datetime import timedelta
from functools import partial

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from portal import logs, metrics
from portal.delivery.signing import Signer
from portal.delivery.smtp_config import smtp_config
from portal.exceptions import OAuthTokenError, SecretError
from portal.extensions import db
from portal.models import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_SENT,
    STATUS_UNKNOWN,
    as_utc,
    utcnow,
)
from portal.outbox import leases, store
from portal.settings.resolution import EffectiveSettings
from portal.wire import egress
from portal.wire.config import SmtpConfig, with_first_token
from portal.wire.errors import (
    SmtpError,
    SmtpRecipientsRefusedError,
    SmtpUnknownOutcomeError,
    SmtpWithdrawnError,
)
from portal.wire.session import SmtpSession

log = logging.getLogger(__name__)
# Failures at these steps say nothing about one mail: the whole session's mails wait.
SESSION_STEPS = frozenset({"resolve", "connect", "greeting", "ehlo", "starttls", "tls", "auth"})


class Batch:
    """Sends claimed mails of one configuration over one connection, reused while grouping.

    Outcomes wait in memory until MAIL_COMMIT_EVERY of them, or MAIL_COMMIT_SECONDS after the
    first, and are then committed together: a crash resends at most the mails whose 250 was
    not committed yet, fewer than MAIL_COMMIT_EVERY per session.

    A mail's final dot goes out only while its claim is sure to last half a lease more: known
    from the claim's own time, or else checked and extended in the database (`_holds`). A
    worker starved past its lease (its heartbeat stopped too) thus never sends what the sweeper
    gave back and another worker took.
    """

    def __init__(
        self,
        settings: EffectiveSettings,
        token: str,
        scopes: dict[int | None, int | None],
    ):
        """`scopes`: whose DKIM keys sign each company's mail (rows of several may share one)."""
        config = current_app.config
        self.settings, self.token, self.scopes = settings, token, scopes
        self.deadline = min(
            settings.timeout_seconds * config["MAIL_DEADLINE_FACTOR"],
            config["MAIL_MAX_DEADLINE_SECONDS"],
        )
        self.commit_every = config["MAIL_COMMIT_EVERY"]
        self.commit_seconds = config["MAIL_COMMIT_SECONDS"]
        self.lease_seconds = config["MAIL_LEASE_SECONDS"]
        self.unsent: set[int] = set()  # ids of this claim's mails not tried yet, still ours
        self.held_until = 0.0  # monotonic: until then the claim on `unsent` surely lasts
        self.per_connection = config["MAIL_GROUP_MAX"] if settings.group_sends else 1
        self.server = f"{settings.host}:{settings.port}"
        self.signer = Signer()
        self.outcomes: list[tuple[int, str, dict]] = []
        self.forget: list[int] = []
        self.first_outcome_at = 0.0
        self.session: SmtpSession | None = None
        self.config: SmtpConfig | None = None
        self.on_connection = 0
        self.session_started = 0.0
        self.broken = False  # the server failed the session: the lane's other mails wait

    def send(self, rows: list, held_until: float) -> None:
        """Send these rows, claimed under the token and surely held until `held_until`
        (monotonic); outcomes are committed by `flush`."""
        tried = {message_id for message_id, _, _ in self.outcomes}
        # Given back while this session waited and claimed again: its outcome is known already.
        rows = [row for row in rows if row.id not in tried]
        self.unsent, self.held_until = {row.id for row in rows}, held_until
        if not self._ready(rows):
            return
        for index, row in enumerate(rows):
            if not self._holds(row.id):
                continue
            if self.session is not None and self.on_connection >= self.per_connection:
                self._drop()
            if self.session is None:
                self.session, self.on_connection = SmtpSession(self.config, self.deadline), 0
                self.session_started = time.monotonic()
            with logs.bound(mail_id=row.id, company_id=row.company_id):
                self.on_connection += 1
                try:
                    raw = self._signed(row)
                    ours = partial(self._holds, row.id)
                    delivery = self.session.send(row.envelope_from, self._pending(row), raw, ours)
                except SmtpWithdrawnError as exc:
                    log.warning("mail %s withdrawn before its final dot (%s)", row.id, exc)
                    self._drop()
                except SecretError as exc:
                    self._finish(row, STATUS_FAILED, str(exc))
                except SmtpUnknownOutcomeError as exc:
                    self._finish(row, STATUS_UNKNOWN, str(exc))
                    self._drop()
                except SmtpRecipientsRefusedError as exc:
                    self._refused(row, exc.recipients, {})
                except OAuthTokenError as exc:
                    # Mail waiting for an admin (re-authorize, fix the client) never gives up.
                    self._defer_all(rows[index:], exc.message, waits=exc.admin_action)
                    return
                except SmtpError as exc:
                    if exc.step in SESSION_STEPS:
                        self._defer_all(rows[index:], str(exc))
                        return
                    if exc.permanent:
                        self._finish(row, STATUS_FAILED, str(exc))
                    else:
                        self._defer(row, str(exc))
                        self._drop()
                else:
                    self._refused(row, delivery.refused, delivery, accepted=delivery.accepted)
                finally:
                    self.unsent.discard(row.id)
            self._maybe_flush()

    def close(self) -> None:
        """Say goodbye to the server and commit what is still waiting."""
        try:
            self._drop()
        finally:
            self.flush()

    def flush(self) -> None:
        """Commit the waiting outcomes in one transaction (only those this claim still holds)."""
        if not self.outcomes:
            return
        outcomes, self.outcomes = self.outcomes, []
        try:
            recorded = self._commit(outcomes)
        except SQLAlchemyError:
            # Uncommitted, these mails go out again once their lease runs out: say so, and try
            # once more (the fence decides again; an aborted transaction changed nothing).
            db.session.rollback()
            ids = sorted(i for i, _, _ in outcomes)
            log.exception("outcomes of mails %s not committed; trying once more", ids)
            try:
                recorded = self._commit(outcomes)
            except SQLAlchemyError:
                db.session.rollback()
                log.error("outcomes of mails %s lost: they are sent again later", ids)
                raise
        statuses = [o["status"] for i, _, o in outcomes if i in recorded]
        metrics.count_deliveries(self.server, statuses)
        summary = ", ".join(f"{n} {status}" for status, n in Counter(statuses).items())
        log.info(
            "%s outcomes recorded via %s (%s)",
            len(recorded),
            self.server,
            summary,
            extra={"mail_ids": sorted(recorded)},
        )
        if len(recorded) < len(outcomes):
            lost = sorted(i for i, _, _ in outcomes if i not in recorded)
            log.warning("outcomes of mails %s dropped: their claim was lost", lost)

    def _commit(self, outcomes: list[tuple[int, str, dict]]) -> set[int]:
        recorded = set(store.record(self.token, outcomes))
        store.forget([i for i in self.forget if i in recorded])
        db.session.commit()
        self.forget.clear()
        return recorded

    def _holds(self, message_id: int) -> bool:
        """Whether the claim on this unsent mail surely lasts half a lease more.

        Known without a round trip while the claim (or the last extension) is recent; else the
        leases of this claim's mails are checked and extended in one statement, on the
        database's clock. Once per half lease per session: not a round trip per mail.
        """
        if time.monotonic() + self.lease_seconds / 2 >= self.held_until:
            asked = time.monotonic()  # before the statement: the lease runs from its start on
            waiting = {message_id for message_id, _, _ in self.outcomes}
            kept = leases.hold(self.token, sorted(self.unsent | waiting), self.lease_seconds)
            lost = sorted(self.unsent - kept)
            if lost:
                log.warning("mails %s not sent: their claim was lost", lost)
            self.unsent &= kept
            self.held_until = asked + self.lease_seconds
        return message_id in self.unsent

    def _ready(self, rows: list) -> bool:
        """Whether a session can be had; if not, every row waits with the reason."""
        if self.broken:
            self._defer_all(rows, "The server failed an earlier session; trying again later.")
            return False
        if self.config is not None:
            return True
        if not self.settings.host:
            self._defer_all(rows, "No SMTP host is configured.")
            return False
        try:
            self.config = with_first_token(smtp_config(self.settings))  # no session without a token
        except egress.EgressError as exc:
            self._defer_all(rows, f"Destination refused: {exc}")
            return False
        except OAuthTokenError as exc:
            self._defer_all(rows, exc.message, waits=exc.admin_action)
            return False
        return True

    def _maybe_flush(self) -> None:
        if len(self.outcomes) >= self.commit_every or (
            self.outcomes and time.monotonic() - self.first_outcome_at >= self.commit_seconds
        ):
            self.flush()

    def _signed(self, row) -> bytes:
        # After the footer and everything else: the signature covers the bytes that go out.
        return self.signer.sign(store.message_bytes(row), self.scopes[row.company_id]).raw

    @staticmethod
    def _pending(row) -> list[str]:
        done = {r for r, v in (row.recipient_results or {}).items() if v["status"] != "deferred"}
        return [r for r in row.recipients if r not in done]

    def _drop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()
            metrics.SMTP_SESSION_SECONDS.labels(self.server).observe(
                time.monotonic() - self.session_started
            )

    def _outcome(self, row, values: dict) -> None:
        if not self.outcomes:
            self.first_outcome_at = time.monotonic()
        self.outcomes.append((row.id, self.server, values))
        # A line per sent mail costs about 8 % of the drain: those are DEBUG, summed up per
        # commit at INFO (see flush); every other outcome is a line of its own.
        level = logging.DEBUG if values["status"] == STATUS_SENT else logging.INFO
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "mail %s %s via %s: %s",
            row.id,
            values["status"],
            self.server,
            values["last_reply"],
            extra={"mail_id": row.id, "company_id": row.company_id, "outcome": values["status"]},
        )

    def _finish(self, row, status: str, reply: str, results: dict | None = None) -> None:
        values = {"status": status, "last_reply": reply, "lease_until": None}
        if results is not None:
            values["recipient_results"] = results
        if status == STATUS_SENT:
            values["sent_at"] = utcnow()
            if self.settings.retention_days == 0:
                self.forget.append(row.id)
        self._outcome(row, values)

    def _refused(self, row, refused, delivery, accepted=()) -> None:
        """Record per-recipient results: accepted ones are done, 4xx ones wait, 5xx ones fail."""
        results = dict(row.recipient_results or {})
        reply = getattr(delivery, "reply", "")
        for recipient in accepted:
            results[recipient] = {"status": "sent", "code": delivery.code, "reply": reply}
        for recipient, (code, text) in refused.items():
            status = "failed" if code >= 500 else "deferred"
            results[recipient] = {"status": status, "code": code, "reply": text}
        if any(v["status"] == "deferred" for v in results.values()):
            self._defer(row, reply or "Some recipients were refused for now.", results)
        elif any(v["status"] == "sent" for v in results.values()):
            self._finish(row, STATUS_SENT, reply, results)
        else:
            first = next(iter(refused.values()), (0, ""))
            self._finish(row, STATUS_FAILED, f"{first[0]} {first[1]}".strip(), results)

    def _defer(self, row, reason: str, results: dict | None = None, waits: bool = False) -> None:
        config = current_app.config
        now = utcnow()
        give_up = as_utc(row.created_at) + timedelta(seconds=config["MAIL_GIVE_UP_SECONDS"])
        if give_up <= now and not waits:
            return self._finish(row, STATUS_FAILED, f"Gave up retrying: {reason}", results)
        delay = min(
            config["MAIL_RETRY_INITIAL_SECONDS"] * 2 ** max(row.attempts - 1, 0),
            config["MAIL_RETRY_MAX_SECONDS"],
        )
        values = {"status": STATUS_DEFERRED, "last_reply": reason, "lease_until": None}
        values["next_attempt_at"] = now + timedelta(seconds=delay)
        if results is not None:
            values["recipient_results"] = results
        self._outcome(row, values)

    def _defer_all(self, rows: list, reason: str, waits: bool = False) -> None:
        self.broken = True
        self._drop()
        for row in rows:
            self._defer(row, reason, waits=waits)
        self.flush()
