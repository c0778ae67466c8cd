"""Typed errors of the SMTP client, and how smtplib, ssl and socket failures map onto them."""

import base64
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

# Where a conversation can fail, in the order they happen: opening the session, then each mail.
SESSION_STEPS = ("resolve", "connect", "greeting", "ehlo", "starttls", "tls", "auth")
MAIL_STEPS = ("mail", "rcpt", "data", "quit")
STEPS = SESSION_STEPS + MAIL_STEPS


class SmtpError(Exception):
    """An SMTP conversation failed at `step`; `code`/`reply` hold the server's answer, if any."""

    def __init__(
        self,
        message: str,
        *,
        step: str,
        code: int | None = None,
        reply: str = "",
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.code = code
        self.reply = reply
        self.permanent = self._permanent(code) if permanent is None else permanent

    @staticmethod
    def _permanent(code: int | None) -> bool:
        # Only a 5xx answer is final: silence, resets and TLS trouble may pass with time.
        return code is not None and code >= 500

    def __str__(self) -> str:
        if self.code is None:
            return f"{self.step}: {self.message}"
        return f"{self.step}: {self.message} ({self.code} {self.reply})".replace(" )", ")")

    def redact(self, secrets: Iterable[str]) -> "SmtpError":
        """Blank out every secret a hostile server might have echoed back; return self."""
        for secret in secrets:
            self.message = self.message.replace(secret, "***")
            self.reply = self.reply.replace(secret, "***")
        self.args = (self.message,)
        return self


class SmtpConnectError(SmtpError):
    """The host name did not resolve, or the TCP connection was refused or unreachable."""


class SmtpDisconnectedError(SmtpConnectError):
    """The server closed (or reset) an established connection."""


class SmtpTimeoutError(SmtpError):
    """A socket operation outlived the timeout, or the per-mail deadline ran out."""

    def __init__(self, message: str, *, step: str, timeout: float) -> None:
        super().__init__(message, step=step)
        self.timeout = timeout


class SmtpWithdrawnError(SmtpError):
    """The sender withdrew the mail before its final dot: the connection was dropped in DATA,
    so the server discards what it got. Nothing was delivered."""


class SmtpTlsError(SmtpError):
    """TLS could not be set up: bad certificate, not a TLS port, or STARTTLS not offered."""


class SmtpAuthError(SmtpError):
    """The server refused the login (530, 534, 535, ...) or offers no usable AUTH."""


class SmtpTemporaryError(SmtpError):
    """A 4xx answer: retrying later may succeed."""

    @staticmethod
    def _permanent(code: int | None) -> bool:
        return False


class SmtpPermanentError(SmtpError):
    """A 5xx (or nonsensical) answer: retrying will not help."""

    @staticmethod
    def _permanent(code: int | None) -> bool:
        return True


class SmtpRecipientsRefusedError(SmtpError):
    """Every recipient was refused; `recipients` maps each one to its (code, reply).

    Raised as SmtpRecipientsRejectedError (also a SmtpPermanentError) when the first refusal
    is 5xx, and as SmtpRecipientsDeferredError (also a SmtpTemporaryError) when it is 4xx.
    """

    def __init__(self, recipients: Mapping[str, tuple[int, str]]) -> None:
        code, reply = next(iter(recipients.values()))
        super().__init__("all recipients refused", step="rcpt", code=code, reply=reply)
        self.recipients = dict(recipients)

    @classmethod
    def from_refusals(
        cls, recipients: Mapping[str, tuple[int, str]]
    ) -> "SmtpRecipientsRefusedError":
        """The permanent or temporary variant, chosen by the first refusal's code."""
        code = next(iter(recipients.values()))[0]
        kind = SmtpRecipientsDeferredError if 400 <= code < 500 else SmtpRecipientsRejectedError
        return kind(recipients)

    def redact(self, secrets: Iterable[str]) -> "SmtpError":
        """As SmtpError.redact, for the per-recipient replies too."""
        secrets = list(secrets)
        for rcpt, (code, reply) in self.recipients.items():
            for secret in secrets:
                reply = reply.replace(secret, "***")
            self.recipients[rcpt] = (code, reply)
        return super().redact(secrets)


class SmtpRecipientsRejectedError(SmtpRecipientsRefusedError, SmtpPermanentError):
    """All recipients refused, the first with a 5xx."""


class SmtpRecipientsDeferredError(SmtpRecipientsRefusedError, SmtpTemporaryError):
    """All recipients refused, the first with a 4xx."""


class SmtpUnknownOutcomeError(SmtpError):
    """The final "." was sent but no answer came: the server may have accepted the mail.

    Not permanent, but never to be retried blindly: a retry may deliver a second copy.
    """

    @classmethod
    def after(cls, cause: SmtpError) -> "SmtpUnknownOutcomeError":
        """The error for `cause` striking while waiting for the answer to the final dot."""
        message = f"no answer after the final dot ({cause.message}); it may have been accepted"
        return cls(message, step="data")


def text(reply: bytes | str) -> str:
    """A server reply as text, whatever bytes it contained."""
    return reply if isinstance(reply, str) else reply.decode("utf-8", "replace")


def reply_error(step: str, code: int, reply: bytes | str) -> SmtpError:
    """The error for an unexpected answer `code` at `step`."""
    if step == "auth":
        return SmtpAuthError("authentication failed", step=step, code=code, reply=text(reply))
    if step == "starttls":
        return SmtpTlsError("STARTTLS refused", step=step, code=code, reply=text(reply))
    if 400 <= code < 500:
        return SmtpTemporaryError("temporarily refused", step=step, code=code, reply=text(reply))
    return SmtpPermanentError("refused", step=step, code=code, reply=text(reply))


def _tls_error(exc: ssl.SSLError) -> SmtpTlsError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = f"certificate verification failed: {exc.verify_message}"
    elif exc.reason == "WRONG_VERSION_NUMBER":
        message = "TLS handshake failed: wrong version number (is this a plain SMTP port?)"
    else:
        message = f"TLS handshake failed: {exc.reason or exc}"
    return SmtpTlsError(message, step="tls")


def translate(exc: BaseException, step: str) -> SmtpError:
    """The typed error for a failure raised by smtplib, ssl or the socket layer at `step`."""
    if isinstance(exc, SmtpError):
        return exc
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SmtpDisconnectedError("the server closed the connection", step=step)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if step == "starttls":
            return SmtpTlsError("STARTTLS not offered", step=step)
        if step == "auth":
            return SmtpAuthError("the server offers no AUTH", step=step)
        return SmtpPermanentError(str(exc), step=step)
    if isinstance(exc, smtplib.SMTPResponseException):
        return reply_error(step, exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPException):
        kind = SmtpAuthError if step == "auth" else SmtpPermanentError
        return kind(str(exc), step=step)
    if isinstance(exc, ssl.SSLError) and step in ("tls", "starttls"):
        return _tls_error(exc)
    if isinstance(exc, socket.gaierror):
        return SmtpConnectError(f"cannot resolve host: {exc.strerror}", step="resolve")
    if isinstance(exc, OSError):
        return SmtpConnectError(f"connection failed: {exc}", step=step)
    if isinstance(exc, ValueError):
        # smtplib refuses line breaks and non-ASCII it cannot encode: the mail cannot go.
        return SmtpPermanentError(f"cannot send: {exc}", step=step)
    raise TypeError(f"not an SMTP failure: {exc!r}")


def secrets_of(username: str | None, password: str | None) -> list[str]:
    """The password and its AUTH PLAIN/LOGIN encodings, as a hostile server could echo them."""
    if not password:
        return []
    plain = f"\0{username or ''}\0{password}".encode()
    encoded = [base64.b64encode(v).decode() for v in (plain, password.encode())]
    return [*encoded, password]  # longest first: the PLAIN blob contains the password's base64


@contextmanager
def typed_errors(step: Callable[[], str], secrets: list[str]) -> Iterator[None]:
    """Turn smtplib, ssl and socket failures into SmtpError, with no secret in their text."""
    try:
        yield
    except SmtpError as exc:
        raise exc.redact(secrets) from exc.__cause__
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise translate(exc, step()).redact(secrets) from exc
