"""The worker's jobs: deliver claimed mails over SMTP and record each outcome at once."""

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from portal import egress, jobs, outbound, outbox
from portal.compose import config_fingerprint
from portal.exceptions import OAuthTokenError
from portal.extensions import db
from portal.models import (
    FINAL_STATUSES,
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_SENT,
    STATUS_UNKNOWN,
    Company,
    OutboxMessage,
    as_utc,
    utcnow,
)
from portal.settings import EffectiveSettings, resolve
from portal.smtp import SmtpConfig, SmtpSession, with_first_token
from portal.smtp_errors import SmtpError, SmtpRecipientsRefusedError, SmtpUnknownOutcomeError

log = logging.getLogger(__name__)
# Failures at these steps say nothing about one mail: the whole session's mails wait.
SESSION_STEPS = frozenset({"resolve", "connect", "greeting", "ehlo", "starttls", "tls", "auth"})


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
    claimed = outbox.claim(ids=[message_id])
    if claimed:
        _deliver(claimed)


def deliver_group(group_key: str) -> None:
    """RQ job: deliver up to MAIL_GROUP_MAX due mails of a group over one session."""
    jobs.clear_group_marker(group_key)  # mails queued from now on schedule a new flush
    limit = current_app.config["MAIL_GROUP_MAX"]
    claimed = outbox.claim(group_key=group_key, limit=limit)
    if len(claimed) == limit:
        # More may wait: another worker can take the next session's worth meanwhile.
        jobs.hand_off(claimed[-1], group_key, now=True)
    if claimed:
        _deliver(claimed)


def sweep() -> dict[str, int]:
    """RQ cron job: requeue mails of dead workers and hand stranded mails to RQ again."""
    released = outbox.release_expired()
    handed = jobs.hand_off_now(outbox.stranded())
    if released or handed:
        log.info("sweep: %s released from dead workers, %s handed to RQ again", released, handed)
    return {"released": released, "handed": handed}


def smtp_config(settings: EffectiveSettings) -> SmtpConfig:
    """The client's settings, its host checked by the egress guard like a connection test.

    The client connects to the checked address. Raises EgressError for a refused destination.
    """
    address = egress.resolve_checked(settings.host or "", settings.port, outbound.egress_policy())
    return outbound.client_config(settings, address=address)


def _deliver(ids: Sequence[int]) -> None:
    rows = outbox.load(ids)
    companies: dict[int | None, EffectiveSettings] = {}
    batches: dict[str, tuple[EffectiveSettings, list]] = {}
    for row in rows:
        if row.company_id not in companies:
            company = db.session.get(Company, row.company_id) if row.company_id else None
            companies[row.company_id] = resolve(company)
        settings = companies[row.company_id]
        batches.setdefault(config_fingerprint(settings), (settings, []))[1].append(row)
    db.session.commit()
    for settings, batch in batches.values():
        _Batch(settings, batch).run()


class _Batch:
    """Mails sharing one SMTP configuration, sent over one session, each outcome committed."""

    def __init__(self, settings: EffectiveSettings, rows: list):
        config = current_app.config
        self.settings = settings
        self.rows = rows
        self.deadline = min(
            settings.timeout_seconds * config["MAIL_DEADLINE_FACTOR"],
            config["MAIL_MAX_DEADLINE_SECONDS"],
        )
        self.lease_every = config["MAIL_LEASE_SECONDS"] / 3
        self.retries: list[tuple[int, object]] = []
        self.server = f"{settings.host}:{settings.port}"

    def run(self) -> None:
        if not self.settings.host:
            self._defer_rest(0, "No SMTP host is configured.")
            return self._schedule_retries()
        try:
            config = with_first_token(smtp_config(self.settings))  # no session without a token
        except egress.EgressError as exc:
            self._defer_rest(0, f"Destination refused: {exc}")
            return self._schedule_retries()
        except OAuthTokenError as exc:
            self._defer_rest(0, exc.message, waits=exc.admin_action)
            return self._schedule_retries()
        session = None
        renewed = time.monotonic()
        try:
            for index, row in enumerate(self.rows):
                if session is None:
                    session = SmtpSession(config, deadline=self.deadline)
                try:
                    delivery = session.send(row.envelope_from, self._pending(row), row.raw)
                except SmtpUnknownOutcomeError as exc:
                    self._finish(row, STATUS_UNKNOWN, str(exc))
                    session = self._drop(session)
                except SmtpRecipientsRefusedError as exc:
                    self._refused(row, exc.recipients, {})
                except OAuthTokenError as exc:
                    # Mail waiting for an admin (re-authorize, fix the client) never gives up.
                    self._defer_rest(index, exc.message, waits=exc.admin_action)
                    break
                except SmtpError as exc:
                    if exc.step in SESSION_STEPS:
                        self._defer_rest(index, str(exc))
                        break
                    if exc.permanent:
                        self._finish(row, STATUS_FAILED, str(exc))
                    else:
                        self._defer(row, str(exc))
                        session = self._drop(session)
                else:
                    self._refused(row, delivery.refused, delivery, accepted=delivery.accepted)
                if time.monotonic() - renewed > self.lease_every:
                    outbox.renew_lease(r.id for r in self.rows[index + 1 :])
                    renewed = time.monotonic()
                db.session.commit()
        finally:
            self._drop(session)
            db.session.commit()
        self._schedule_retries()

    @staticmethod
    def _pending(row) -> list[str]:
        done = {r for r, v in (row.recipient_results or {}).items() if v["status"] != "deferred"}
        return [r for r in row.recipients if r not in done]

    @staticmethod
    def _drop(session):
        if session is not None:
            session.close()
        return None

    def _finish(self, row, status: str, reply: str, results: dict | None = None) -> None:
        values = {"status": status, "last_reply": reply, "lease_until": None}
        if results is not None:
            values["recipient_results"] = results
        if status == STATUS_SENT:
            values["sent_at"] = utcnow()
        outbox.record(row.id, self.server, **values)
        if status == STATUS_SENT and self.settings.retention_days == 0:
            outbox.forget(row.id)

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
        at = now + timedelta(seconds=delay)
        values = {"status": STATUS_DEFERRED, "last_reply": reason, "lease_until": None}
        values["next_attempt_at"] = at
        if results is not None:
            values["recipient_results"] = results
        outbox.record(row.id, self.server, **values)
        self.retries.append((row.id, at))

    def _defer_rest(self, start: int, reason: str, waits: bool = False) -> None:
        for row in self.rows[start:]:
            self._defer(row, reason, waits=waits)
        db.session.commit()

    def _schedule_retries(self) -> None:
        # After the commit, like every hand-off; the sweep covers a Redis outage.
        for message_id, at in self.retries:
            jobs.hand_off(message_id, None, at=at)
        self.retries.clear()
