"""A record of one SMTP conversation: each step with its duration, and a redacted transcript."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from portal.wire.texts import N_

REDACTED = "[redacted]"


@dataclass
class TraceStep:
    name: str
    started: float
    seconds: float = 0.0
    ok: bool | None = None  # None while running
    details: list[str] = field(default_factory=list)


class Trace:
    """Told by the transport when the step changes and what goes over the wire."""

    def __init__(self) -> None:
        self.steps: list[TraceStep] = []
        self.transcript: list[str] = []
        self.auth_mechanism: str | None = None
        self.secrets: list[str] = []  # set by the session: never shown, even if a server echoes
        self._secret_follows = False
        # Told of every step begun or ended (a live view); may stop the conversation by raising
        # before a step begins (a cancelled test).
        self.listener: Callable[[], None] | None = None
        self.checkpoint: Callable[[str], None] | None = None

    @property
    def current(self) -> TraceStep | None:
        return self.steps[-1] if self.steps and self.steps[-1].ok is None else None

    def enter(self, name: str) -> None:
        """Close the running step as done and start `name` (unless it is the one running)."""
        current = self.current
        if current is not None and current.name == name:
            return
        if self.checkpoint is not None:
            self.checkpoint(name)
        self._close(current, ok=True)
        self.steps.append(TraceStep(name, time.monotonic()))
        self._changed()

    def detail(self, text: str) -> None:
        if self.current is not None:
            self.current.details.append(text)

    def finish(self, ok: bool) -> None:
        self._close(self.current, ok=ok)
        self._changed()

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener()

    def sent(self, data: bytes) -> None:
        line = data.decode("utf-8", errors="replace").rstrip("\r\n")
        if "\n" in line:  # the message itself: not part of the transcript
            self.transcript.append(f"C: <message, {len(data)} bytes>")
            return
        words = line.split()
        if words and words[0].upper() == "AUTH":
            self.auth_mechanism = words[1].upper() if len(words) > 1 else None
            self.detail(N_("mechanism %(mechanism)s") % {"mechanism": self.auth_mechanism})
            line = " ".join(words[:2] + ([REDACTED] if len(words) > 2 else []))
        elif self._secret_follows:
            line = REDACTED
        self.transcript.append(self._redacted(f"C: {line}"))

    def received(self, code: int, reply: bytes) -> None:
        # After a 334 the client answers with (base64) credentials.
        self._secret_follows = code == 334
        text = reply.decode("utf-8", errors="replace")
        shown = REDACTED if code == 334 else text.replace("\n", " | ")
        self.transcript.append(self._redacted(f"S: {code} {shown}"))

    def _redacted(self, line: str) -> str:
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line

    @staticmethod
    def _close(step: TraceStep | None, ok: bool) -> None:
        if step is not None:
            step.seconds = time.monotonic() - step.started
            step.ok = ok
