"""Test connection: a synchronous, step-by-step SMTP check that sends a real test mail."""

import re
import time
from dataclasses import dataclass, field, replace

from portal.exceptions import OAuthTokenError
from portal.wire import egress
from portal.wire.config import SmtpConfig, with_first_token
from portal.wire.diagnosis import Diagnosis, explain
from portal.wire.errors import SmtpError
from portal.wire.session import SmtpSession
from portal.wire.trace import Trace

STEP_LABELS = {
    "token": "Obtain an OAuth2 access token",
    "resolve": "Resolve the host",
    "connect": "Connect",
    "greeting": "Server greeting",
    "ehlo": "EHLO",
    "starttls": "STARTTLS",
    "tls": "TLS handshake",
    "auth": "Authentication",
    "mail": "MAIL FROM",
    "rcpt": "RCPT TO",
    "data": "DATA",
    "accepted": "Server accepted the message",
    "quit": "QUIT",
}
QUEUE_ID = re.compile(r"(?i)queued as\s+([\w.-]+)|\bid=([\w.-]+)")


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    ok: bool
    seconds: float
    details: tuple[str, ...] = ()


@dataclass
class ProbeResult:
    steps: list[Step]
    diagnosis: Diagnosis | None = None
    server_reply: str | None = None
    detail: str | None = None  # the full reason, for the superuser only
    transcript: list[str] = field(default_factory=list)
    queue_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.diagnosis is None

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
) -> ProbeResult:
    """Resolve (through the egress guard), connect, talk, send the test mail; record each step."""
    trace = Trace()
    result = ProbeResult(steps=[])
    session = None
    queue_id = None
    try:
        if config.token_source is not None:
            trace.enter("token")  # its own step: a refresh failure is told apart
            config = with_first_token(config)
            trace.detail("The provider issued an access token.")
        trace.enter("resolve")
        address = egress.resolve_checked(config.host, config.port, policy, resolver)
        trace.detail(f"{config.host} → {address}")
        session = SmtpSession(replace(config, connect_address=address), deadline, trace=trace)
        session.open()
        delivery = session.send(sender, [recipient], message)
        trace.enter("accepted")
        trace.detail(delivery.reply)
        match = QUEUE_ID.search(delivery.reply)
        queue_id = next((g for g in match.groups() if g), None) if match else None
        session.close()
        trace.finish(ok=True)
    except (SmtpError, egress.EgressError, OAuthTokenError) as exc:
        trace.finish(ok=False)
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
    finally:
        if session is not None:
            session.close()
        if trace.current is not None:  # QUIT after a failure: not the failing step
            trace.finish(ok=True)
    result.steps = [
        Step(s.name, STEP_LABELS.get(s.name, s.name), bool(s.ok), s.seconds, tuple(s.details))
        for s in trace.steps
    ]
    result.transcript = trace.transcript
    result.queue_id = queue_id
    return result


def _mark_failed(trace: Trace, step: str) -> None:
    """Make the step the error names the failed one, even if the wire had moved on."""
    if trace.steps and trace.steps[-1].name != step:
        failed = trace.steps[-1]
        if failed.ok is False:
            failed.ok = True
        trace.steps.append(type(failed)(step, time.monotonic(), 0.0, False))
