"""Plain-language explanations of what went wrong in an SMTP connection, and what to try."""

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # a stable key, e.g. "connection-refused"
    problem: str
    hint: str


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
        return Diagnosis(
            "oauth-token-refused",
            "SMTP refused the token: the server did not accept a freshly refreshed access token.",
            "Check that the mailbox address is the account that authorized, that the scopes "
            "allow SMTP (Google: https://mail.google.com/, Microsoft: SMTP.Send) and, for "
            "Microsoft 365, that authenticated SMTP is enabled for the mailbox.",
        )
    if not isinstance(exc, SmtpError):
        return Diagnosis("error", f"The test failed: {exc}", "Try again; if it persists, tell us.")
    for check in (_network, _tls, _auth, _envelope):
        found = check(exc, host, port, timeout, sender)
        if found is not None:
            return found
    if exc.code and 400 <= exc.code < 500:
        return Diagnosis(
            "temporary",
            f"The server answered with a temporary error during {exc.step}.",
            "Try again in a few minutes; if it persists, ask the mail provider.",
        )
    return Diagnosis("refused", f"The server refused the {exc.step} step.", "Read the reply below.")


def _token_refresh(exc: OAuthTokenError) -> Diagnosis:
    if isinstance(exc, ReauthorizationNeededError):
        hint = "Authorize the mailbox again (Authorize below); mail waits meanwhile."
    elif exc.admin_action:
        hint = "Check the client ID and secret with the provider: client secrets expire."
    else:
        hint = "The provider's token endpoint did not answer as expected; try again later."
    problem = exc.message
    if not problem.startswith("Token refresh failed"):
        problem = f"Token refresh failed. {problem}"
    return Diagnosis("oauth-token-refresh", problem, hint)


def _egress(exc: EgressError, host: str, port: int) -> Diagnosis:
    if exc.kind == "resolve":
        return _host_not_found(host)
    if exc.kind == "port":
        return Diagnosis(
            "port-not-allowed",
            f"Port {port} is not an SMTP port allowed here.",
            "Use 587 (STARTTLS), 465 (SSL/TLS), 25 or 2525; the superuser can allow more ports.",
        )
    return Diagnosis(
        "destination-refused",
        "This destination is not allowed: it points to an internal network address.",
        "Use your mail provider's public SMTP host; the superuser can allowlist internal relays.",
    )


def _host_not_found(host: str) -> Diagnosis:
    return Diagnosis(
        "host-not-found",
        f"The host {host} was not found (no DNS record).",
        "Check the spelling of the host name, e.g. smtp.example.com.",
    )


def _network(exc, host, port, timeout, sender) -> Diagnosis | None:
    if isinstance(exc, SmtpUnknownOutcomeError):
        return Diagnosis(
            "no-final-answer",
            "The message was sent but the server did not confirm it in time.",
            "It may still arrive. Check the mailbox before testing again.",
        )
    if isinstance(exc, SmtpConnectError) and exc.step == "resolve":
        return _host_not_found(host)
    if isinstance(exc, SmtpDisconnectedError):
        return Diagnosis(
            "disconnected",
            f"The server closed the connection during {exc.step}.",
            "Check the security setting and port; the server may also limit connections.",
        )
    if isinstance(exc, SmtpConnectError):
        if "refused" in str(exc).lower():
            return Diagnosis(
                "connection-refused",
                f"Connection refused: nothing accepts connections on {host} port {port}.",
                "Check the port: 587 is STARTTLS, 465 is SSL/TLS, 25 is plain SMTP.",
            )
        return Diagnosis(
            "unreachable", f"{host} cannot be reached: {exc.message}.", "Check host and port."
        )
    if isinstance(exc, SmtpTimeoutError):
        waited = exc.timeout or timeout  # the opening may have had a shorter bound than the rest
        if exc.step == "connect":
            return Diagnosis(
                "no-answer",
                f"No answer from {host} port {port} within {waited:g} s.",
                "Most mail problems are closed ports: a firewall or the hosting provider may "
                f"block outgoing connections to port {port}. Ask them, or try 587 or 465.",
            )
        if exc.step == "greeting":
            return Diagnosis(
                "no-greeting",
                f"The server accepted the connection but sent no greeting within {waited:g} s.",
                "If this port expects implicit TLS (usually 465), choose SSL/TLS security.",
            )
        return Diagnosis(
            "timeout",
            f"Timeout during {exc.step}: no answer within the configured {timeout:g} s.",
            "The server is slow or stuck; try again later or raise the SMTP timeout.",
        )
    return None


def _tls(exc, host, port, timeout, sender) -> Diagnosis | None:
    if not isinstance(exc, SmtpTlsError):
        return None
    text = str(exc).lower()
    if "wrong version number" in text or "unknown protocol" in text or "record" in text:
        return Diagnosis(
            "tls-mismatch",
            "TLS was spoken to a port that expects plain SMTP (or STARTTLS first).",
            "Choose STARTTLS for port 587 or 25, and SSL/TLS only for port 465.",
        )
    if "starttls not offered" in text:
        return Diagnosis(
            "starttls-missing",
            "The server does not offer STARTTLS, so the connection would not be encrypted.",
            "Choose SSL/TLS on port 465 if the server supports it; mail is never sent "
            "unencrypted when STARTTLS is chosen.",
        )
    if "expired" in text:
        return Diagnosis(
            "certificate-expired",
            "The server's certificate has expired.",
            "The mail provider must renew its certificate.",
        )
    if "hostname mismatch" in text or "doesn't match" in text or "not valid for" in text:
        return Diagnosis(
            "certificate-wrong-host",
            f"The server's certificate is not for {host}.",
            "Use the host name the provider documents (the one in its certificate).",
        )
    if "certificate" in text:
        return Diagnosis(
            "certificate-untrusted",
            "The server's certificate is not trusted (unknown or self-signed issuer).",
            "Use the provider's official host name. For an internal CA, add its certificate under "
            "Trusted CA certificates (Server) and test again.",
        )
    return Diagnosis("tls", f"The TLS handshake failed: {exc.message}.", "Check security and port.")


def _auth(exc, host, port, timeout, sender) -> Diagnosis | None:
    reply = _reply(exc)
    if exc.code == 530 or "authentication required" in reply:
        return Diagnosis(
            "auth-required",
            "The server requires authentication.",
            "Turn Authentication on and enter the user and password of the mailbox.",
        )
    if "too many" in reply or (exc.code in (421, 454) and "attempt" in reply):
        return Diagnosis(
            "auth-too-many",
            "Too many failed login attempts: the server is blocking logins for now.",
            "Wait before trying again, and check the password first.",
        )
    if not isinstance(exc, SmtpAuthError):
        return None
    if "5.7.139" in reply:
        return Diagnosis(
            "auth-m365-disabled",
            "Microsoft 365 has SMTP AUTH turned off for this tenant or mailbox (535 5.7.139).",
            "Enable authenticated SMTP for the mailbox in the Microsoft 365 admin center, "
            "or connect with OAuth2.",
        )
    if "5.7.8" in reply and ("gsmtp" in reply or "google" in reply or "gmail" in host):
        return Diagnosis(
            "auth-gmail",
            "Gmail did not accept the user name and password (535-5.7.8).",
            "Use an app password (Google account → Security → App passwords), or OAuth2.",
        )
    if exc.code is None:
        return Diagnosis(
            "auth-unavailable",
            "The server offers no login method on this connection.",
            "Most servers offer login only after STARTTLS: choose STARTTLS or SSL/TLS.",
        )
    return Diagnosis(
        "auth-failed",
        "The server refused the user name or password.",
        "Check the user (often the full address) and enter the password again.",
    )


def _envelope(exc, host, port, timeout, sender) -> Diagnosis | None:
    reply = _reply(exc)
    if exc.code == 552 or "5.3.4" in reply or "too big" in reply or "too large" in reply:
        return Diagnosis(
            "too-large",
            "The server refused the message as too large.",
            "Send smaller mails or ask the provider for its size limit.",
        )
    if "sendasdenied" in reply or "5.2.252" in reply:
        return Diagnosis(
            "send-as-denied",
            f"The mailbox may not send as {sender} (Microsoft 365 SendAsDenied).",
            "Use the mailbox address as the sender address, or give the mailbox Send As "
            "rights for this address in Exchange.",
        )
    if exc.step == "mail" and exc.permanent:
        return Diagnosis(
            "sender-refused",
            f"The server refused the sender address {sender}.",
            "Use a sender address the account may send as (often the login address itself).",
        )
    if isinstance(exc, SmtpRecipientsRefusedError) or exc.step == "rcpt":
        if "relay" in reply:
            return Diagnosis(
                "relay-denied",
                "The server does not relay mail to this recipient for this account.",
                "Turn Authentication on, or check that the server may send to outside domains.",
            )
        return Diagnosis(
            "recipient-refused",
            "The server refused the recipient address.",
            "Check the recipient, or try another address.",
        )
    return None
