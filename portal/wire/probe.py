"""Test connection: a step-by-step SMTP check that sends a real test mail, and can be cancelled."""

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from portal.exceptions import OAuthTokenError
from portal.wire import egress
from portal.wire.config import SmtpConfig, with_first_token
from portal.wire.diagnosis import Diagnosis, explain
from portal.wire.errors import SmtpError
from portal.wire.session import SmtpSession
from portal.wire.texts import N_
from portal.wire.trace import Trace

# The protocol's own words stay as they are; the others are translated when shown.
STEP_LABELS = {
    "token": N_("Obtain an OAuth2 access token"),
    "resolve": N_("Resolve the host"),
    "connect": N_("Connect"),
    "greeting": N_("Server greeting"),
    "ehlo": "EHLO",
    "starttls": "STARTTLS",
    "tls": N_("TLS handshake"),
    "auth": N_("Authentication"),
    "mail": "MAIL FROM",
    "rcpt": "RCPT TO",
    "data": "DATA",
    "accepted": N_("Server accepted the message"),
    "quit": "QUIT",
}
QUEUE_ID = re.compile(r"(?i)queued as\s+([\w.-]+)|\bid=([\w.-]+)")


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    ok: bool | None  # None: still running (a progress report)
    seconds: float
    details: tuple[str, ...] = ()


class ProbeCancelledError(Exception):
    """The probe was cancelled: raised before the next step begins."""


class Cancel:
    """Asked from another thread to stop a probe: before its next step, and on the wire at once."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._session: SmtpSession | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            session = self._session
        if session is not None:
            session.abort()

    def checkpoint(self, step: str) -> None:
        if self._event.is_set():
            raise ProbeCancelledError(step)

    def attach(self, session: SmtpSession) -> None:
        with self._lock:
            self._session = session
        if self._event.is_set():
            session.abort()


@dataclass
class ProbeResult:
    steps: list[Step]
    diagnosis: Diagnosis | None = None
    server_reply: str | None = None
    detail: str | None = None  # the full reason, for the superuser only
    transcript: list[str] = field(default_factory=list)
    queue_id: str | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.diagnosis is None and not self.cancelled

    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if not s.ok), None)


def run(
    config: SmtpConfig,
    *,
    sender: str,
    recipient: str,
    message: bytes,
    policy: egress.EgressPolicy,
    deadline: float,
    resolver: egress.Resolver = egress.system_resolver,
    progress: Callable[[list[Step]], None] | None = None,
    cancel: Cancel | None = None,
) -> ProbeResult:
    """Resolve (through the egress guard), connect, talk, send the test mail; record each step.

    `progress` hears the steps so far whenever one begins or ends; `cancel` stops the probe.
    """
    trace = Trace()
    result = ProbeResult(steps=[])
    session = None
    queue_id = None
    if progress is not None:
        trace.listener = lambda: progress(_steps(trace))
    if cancel is not None:
        trace.checkpoint = cancel.checkpoint
    try:
        if config.token_source is not None:
            trace.enter("token")  # its own step: a refresh failure is told apart
            config = with_first_token(config)
            trace.detail(N_("The provider issued an access token."))
        trace.enter("resolve")
        address = egress.resolve_checked(config.host, config.port, policy, resolver)
        trace.detail(f"{config.host} → {address}")
        session = SmtpSession(replace(config, connect_address=address), deadline, trace=trace)
        if cancel is not None:
            cancel.attach(session)
        session.open()
        delivery = session.send(sender, [recipient], message)
        trace.enter("accepted")
        trace.detail(delivery.reply)
        match = QUEUE_ID.search(delivery.reply)
        queue_id = next((g for g in match.groups() if g), None) if match else None
        session.close()
        trace.finish(ok=True)
    except (SmtpError, egress.EgressError, OAuthTokenError, ProbeCancelledError) as exc:
        trace.checkpoint = None  # the goodbye below is not a step to cancel
        trace.finish(ok=False)
        if cancel is not None and cancel.is_set():
            # Whatever the wire said after the cancel (a closed socket), the user stopped it.
            result.cancelled = True
        else:
            _diagnose(result, trace, exc, config, sender)
    finally:
        trace.checkpoint = None
        if session is not None:
            session.close()
        if trace.current is not None:  # QUIT after a failure: not the failing step
            trace.finish(ok=True)
    result.steps = _steps(trace)
    result.transcript = trace.transcript
    result.queue_id = queue_id
    return result


def _steps(trace: Trace) -> list[Step]:
    now = time.monotonic()
    return [
        Step(
            s.name,
            STEP_LABELS.get(s.name, s.name),
            s.ok,
            s.seconds if s.ok is not None else now - s.started,
            tuple(s.details),
        )
        for s in trace.steps
    ]


def _diagnose(
    result: ProbeResult, trace: Trace, exc: Exception, config: SmtpConfig, sender: str
) -> None:
    if not isinstance(exc, OAuthTokenError):
        _mark_failed(trace, getattr(exc, "step", "resolve"))
    result.diagnosis = explain(
        exc,
        host=config.host,
        port=config.port,
        timeout=config.timeout,
        sender=sender,
        oauth=config.token_source is not None,
    )
    if isinstance(exc, SmtpError) and exc.code:
        result.server_reply = f"{exc.code} {exc.reply}".strip()
    result.detail = str(exc)


def _mark_failed(trace: Trace, step: str) -> None:
    """Make the step the error names the failed one, even if the wire had moved on."""
    if trace.steps and trace.steps[-1].name != step:
        failed = trace.steps[-1]
        if failed.ok is False:
            failed.ok = True
        trace.steps.append(type(failed)(step, time.monotonic(), 0.0, False))
