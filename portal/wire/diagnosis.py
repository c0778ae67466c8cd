"""Plain-language explanations of what went wrong in an SMTP connection, and what to try."""

from dataclasses import dataclass, field

from portal.exceptions import OAuthTokenError, ReauthorizationNeededError
from portal.wire.egress import EgressError
from portal.wire.errors import (
    SmtpAuthError,
    SmtpConnectError,
    SmtpDisconnectedError,
    SmtpError,
    SmtpRecipientsRefusedError,
    SmtpTimeoutError,
    SmtpTlsError,
    SmtpUnknownOutcomeError,
)
from portal.wire.texts import N_


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong and what to try, in English with its values apart, for pages to translate."""

    cause: str  # a stable key, e.g. "connection-refused"
    problem_text: str  # marked with N_; %(name)s placeholders filled from params
    hint_text: str
    # None: the texts are whole sentences already (a result stored before params existed).
    params: dict[str, str] | None = field(default_factory=dict)

    @property
    def problem(self) -> str:
        """The problem in English, its values filled in (the audit row, the logs)."""
        return filled(self.problem_text, self.params)

    @property
    def hint(self) -> str:
        return filled(self.hint_text, self.params)


def filled(text: str, params: dict[str, str] | None) -> str:
    """A text with its values; one without any is left alone, a literal % included."""
    return text % params if params else text


def _told(cause: str, problem: str, hint: str, **params: object) -> Diagnosis:
    return Diagnosis(cause, problem, hint, {name: str(value) for name, value in params.items()})


def _reply(exc: SmtpError) -> str:
    return f"{exc.code or ''} {exc.reply or ''}".lower()


def explain(
    exc: Exception, *, host: str, port: int, timeout: float, sender: str, oauth: bool = False
) -> Diagnosis:
    """The most specific diagnosis for an error raised while testing a connection."""
    if isinstance(exc, EgressError):
        return _egress(exc, host, port)
    if isinstance(exc, OAuthTokenError):
        return _token_refresh(exc)
    if (
        oauth
        and isinstance(exc, SmtpAuthError)
        and exc.code == 535
        and "5.7.139" not in _reply(exc)
    ):
        return _told(
            "oauth-token-refused",
            N_(
                "SMTP refused the token: the server did not accept a freshly refreshed "
                "access token."
            ),
            N_(
                "Check that the mailbox address is the account that authorized, that the scopes "
                "allow SMTP (Google: https://mail.google.com/, Microsoft: SMTP.Send) and, for "
                "Microsoft 365, that authenticated SMTP is enabled for the mailbox."
            ),
        )
    if not isinstance(exc, SmtpError):
        return _told(
            "error",
            N_("The test failed: %(error)s"),
            N_("Try again; if it persists, tell us."),
            error=exc,
        )
    for check in (_network, _tls, _auth, _envelope):
        found = check(exc, host, port, timeout, sender)
        if found is not None:
            return found
    if exc.code and 400 <= exc.code < 500:
        return _told(
            "temporary",
            N_("The server answered with a temporary error during %(step)s."),
            N_("Try again in a few minutes; if it persists, ask the mail provider."),
            step=exc.step,
        )
    return _told(
        "refused",
        N_("The server refused the %(step)s step."),
        N_("Read the reply below."),
        step=exc.step,
    )


def _token_refresh(exc: OAuthTokenError) -> Diagnosis:
    if isinstance(exc, ReauthorizationNeededError):
        hint = N_("Authorize the mailbox again (Authorize below); mail waits meanwhile.")
    elif exc.admin_action:
        hint = N_("Check the client ID and secret with the provider: client secrets expire.")
    else:
        hint = N_("The provider's token endpoint did not answer as expected; try again later.")
    if exc.message.startswith("Token refresh failed"):
        # The token store's own sentence, whole: shown as it was written.
        return Diagnosis("oauth-token-refresh", "%(reason)s", hint, {"reason": exc.message})
    return _told(
        "oauth-token-refresh", N_("Token refresh failed. %(reason)s"), hint, reason=exc.message
    )


def _egress(exc: EgressError, host: str, port: int) -> Diagnosis:
    if exc.kind == "resolve":
        return _host_not_found(host)
    if exc.kind == "port":
        return _told(
            "port-not-allowed",
            N_("Port %(port)s is not an SMTP port allowed here."),
            N_(
                "Use 587 (STARTTLS), 465 (SSL/TLS), 25 or 2525; the superuser can allow more ports."
            ),
            port=port,
        )
    return _told(
        "destination-refused",
        N_("This destination is not allowed: it points to an internal network address."),
        N_(
            "Use your mail provider's public SMTP host; the superuser can allowlist "
            "internal relays."
        ),
    )


def _host_not_found(host: str) -> Diagnosis:
    return _told(
        "host-not-found",
        N_("The host %(host)s was not found (no DNS record)."),
        N_("Check the spelling of the host name, e.g. smtp.example.com."),
        host=host,
    )


def _network(exc, host, port, timeout, sender) -> Diagnosis | None:
    if isinstance(exc, SmtpUnknownOutcomeError):
        return _told(
            "no-final-answer",
            N_("The message was sent but the server did not confirm it in time."),
            N_("It may still arrive. Check the mailbox before testing again."),
        )
    if isinstance(exc, SmtpConnectError) and exc.step == "resolve":
        return _host_not_found(host)
    if isinstance(exc, SmtpDisconnectedError):
        return _told(
            "disconnected",
            N_("The server closed the connection during %(step)s."),
            N_("Check the security setting and port; the server may also limit connections."),
            step=exc.step,
        )
    if isinstance(exc, SmtpConnectError):
        if "refused" in str(exc).lower():
            return _told(
                "connection-refused",
                N_("Connection refused: nothing accepts connections on %(host)s port %(port)s."),
                N_("Check the port: 587 is STARTTLS, 465 is SSL/TLS, 25 is plain SMTP."),
                host=host,
                port=port,
            )
        return _told(
            "unreachable",
            N_("%(host)s cannot be reached: %(reason)s."),
            N_("Check host and port."),
            host=host,
            reason=exc.message,
        )
    if isinstance(exc, SmtpTimeoutError):
        waited = exc.timeout or timeout  # the opening may have had a shorter bound than the rest
        if exc.step == "connect":
            return _told(
                "no-answer",
                N_("No answer from %(host)s port %(port)s within %(seconds)s s."),
                N_(
                    "Most mail problems are closed ports: a firewall or the hosting provider may "
                    "block outgoing connections to port %(port)s. Ask them, or try 587 or 465."
                ),
                host=host,
                port=port,
                seconds=f"{waited:g}",
            )
        if exc.step == "greeting":
            return _told(
                "no-greeting",
                N_("The server accepted the connection but sent no greeting within %(seconds)s s."),
                N_("If this port expects implicit TLS (usually 465), choose SSL/TLS security."),
                seconds=f"{waited:g}",
            )
        return _told(
            "timeout",
            N_("Timeout during %(step)s: no answer within the configured %(seconds)s s."),
            N_("The server is slow or stuck; try again later or raise the SMTP timeout."),
            step=exc.step,
            seconds=f"{timeout:g}",
        )
    return None


def _tls(exc, host, port, timeout, sender) -> Diagnosis | None:
    if not isinstance(exc, SmtpTlsError):
        return None
    text = str(exc).lower()
    if "wrong version number" in text or "unknown protocol" in text or "record" in text:
        return _told(
            "tls-mismatch",
            N_("TLS was spoken to a port that expects plain SMTP (or STARTTLS first)."),
            N_("Choose STARTTLS for port 587 or 25, and SSL/TLS only for port 465."),
        )
    if "starttls not offered" in text:
        return _told(
            "starttls-missing",
            N_("The server does not offer STARTTLS, so the connection would not be encrypted."),
            N_(
                "Choose SSL/TLS on port 465 if the server supports it; mail is never sent "
                "unencrypted when STARTTLS is chosen."
            ),
        )
    if "expired" in text:
        return _told(
            "certificate-expired",
            N_("The server's certificate has expired."),
            N_("The mail provider must renew its certificate."),
        )
    if "hostname mismatch" in text or "doesn't match" in text or "not valid for" in text:
        return _told(
            "certificate-wrong-host",
            N_("The server's certificate is not for %(host)s."),
            N_("Use the host name the provider documents (the one in its certificate)."),
            host=host,
        )
    if "certificate" in text:
        return _told(
            "certificate-untrusted",
            N_("The server's certificate is not trusted (unknown or self-signed issuer)."),
            N_(
                "Use the provider's official host name. For an internal CA, add its certificate "
                "under Trusted CA certificates (Server) and test again."
            ),
        )
    return _told(
        "tls",
        N_("The TLS handshake failed: %(reason)s."),
        N_("Check security and port."),
        reason=exc.message,
    )


def _auth(exc, host, port, timeout, sender) -> Diagnosis | None:
    reply = _reply(exc)
    if exc.code == 530 or "authentication required" in reply:
        return _told(
            "auth-required",
            N_("The server requires authentication."),
            N_("Turn Authentication on and enter the user and password of the mailbox."),
        )
    if "too many" in reply or (exc.code in (421, 454) and "attempt" in reply):
        return _told(
            "auth-too-many",
            N_("Too many failed login attempts: the server is blocking logins for now."),
            N_("Wait before trying again, and check the password first."),
        )
    if not isinstance(exc, SmtpAuthError):
        return None
    if "5.7.139" in reply:
        return _told(
            "auth-m365-disabled",
            N_("Microsoft 365 has SMTP AUTH turned off for this tenant or mailbox (535 5.7.139)."),
            N_(
                "Enable authenticated SMTP for the mailbox in the Microsoft 365 admin center, "
                "or connect with OAuth2."
            ),
        )
    if "5.7.8" in reply and ("gsmtp" in reply or "google" in reply or "gmail" in host):
        return _told(
            "auth-gmail",
            N_("Gmail did not accept the user name and password (535-5.7.8)."),
            N_("Use an app password (Google account → Security → App passwords), or OAuth2."),
        )
    if exc.code is None:
        return _told(
            "auth-unavailable",
            N_("The server offers no login method on this connection."),
            N_("Most servers offer login only after STARTTLS: choose STARTTLS or SSL/TLS."),
        )
    return _told(
        "auth-failed",
        N_("The server refused the user name or password."),
        N_("Check the user (often the full address) and enter the password again."),
    )


def _envelope(exc, host, port, timeout, sender) -> Diagnosis | None:
    reply = _reply(exc)
    if exc.code == 552 or "5.3.4" in reply or "too big" in reply or "too large" in reply:
        return _told(
            "too-large",
            N_("The server refused the message as too large."),
            N_("Send smaller mails or ask the provider for its size limit."),
        )
    if "sendasdenied" in reply or "5.2.252" in reply:
        return _told(
            "send-as-denied",
            N_("The mailbox may not send as %(sender)s (Microsoft 365 SendAsDenied)."),
            N_(
                "Use the mailbox address as the sender address, or give the mailbox Send As "
                "rights for this address in Exchange."
            ),
            sender=sender,
        )
    if exc.step == "mail" and exc.permanent:
        return _told(
            "sender-refused",
            N_("The server refused the sender address %(sender)s."),
            N_("Use a sender address the account may send as (often the login address itself)."),
            sender=sender,
        )
    if isinstance(exc, SmtpRecipientsRefusedError) or exc.step == "rcpt":
        if "relay" in reply:
            return _told(
                "relay-denied",
                N_("The server does not relay mail to this recipient for this account."),
                N_("Turn Authentication on, or check that the server may send to outside domains."),
            )
        return _told(
            "recipient-refused",
            N_("The server refused the recipient address."),
            N_("Check the recipient, or try another address."),
        )
    return None
