"""A batch: mails of one SMTP configuration over one session, each outcome committed at once."""

import time
from datetime import timedelta

from flask import current_app

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
from portal.outbox import handoff, store
from portal.settings.resolution import EffectiveSettings
from portal.wire import egress
from portal.wire.config import with_first_token
from portal.wire.errors import SmtpError, SmtpRecipientsRefusedError, SmtpUnknownOutcomeError
from portal.wire.session import SmtpSession

# Failures at these steps say nothing about one mail: the whole session's mails wait.
SESSION_STEPS = frozenset({"resolve", "connect", "greeting", "ehlo", "starttls", "tls", "auth"})


class Batch:
    """Mails sharing one SMTP configuration, sent over one session, each outcome committed."""

    def __init__(
        self, settings: EffectiveSettings, rows: list, scopes: dict[int | None, int | None]
    ):
        """`scopes`: whose DKIM keys sign each company's mail (rows of several may share one)."""
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
        self.signer, self.scopes = Signer(), scopes

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
                    raw = self._signed(row)
                    delivery = session.send(row.envelope_from, self._pending(row), raw)
                except SecretError as exc:
                    self._finish(row, STATUS_FAILED, str(exc))
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
                    store.renew_lease(r.id for r in self.rows[index + 1 :])
                    renewed = time.monotonic()
                db.session.commit()
        finally:
            self._drop(session)
            db.session.commit()
        self._schedule_retries()

    def _signed(self, row) -> bytes:
        # After the footer and everything else: the signature covers the bytes that go out.
        return self.signer.sign(store.message_bytes(row), self.scopes[row.company_id]).raw

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
        store.record(row.id, self.server, **values)
        if status == STATUS_SENT and self.settings.retention_days == 0:
            store.forget(row.id)

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
        store.record(row.id, self.server, **values)
        self.retries.append((row.id, at))

    def _defer_rest(self, start: int, reason: str, waits: bool = False) -> None:
        for row in self.rows[start:]:
            self._defer(row, reason, waits=waits)
        db.session.commit()

    def _schedule_retries(self) -> None:
        # After the commit, like every hand-off; the sweep covers a Redis outage.
        for message_id, at in self.retries:
            handoff.hand_off(message_id, None, at=at)
        self.retries.clear()
