"""Test connection behind the screens: which password, the test mail, the probe, the audit."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from email_validator import EmailNotValidError
from flask_babel import gettext

from portal import audit, crypto, i18n, metrics
from portal.delivery import smtp_config
from portal.delivery.signing import Signer
from portal.exceptions import MailValidationError
from portal.keys import tokens
from portal.models import Company, MailConfig, User
from portal.outbox.compose import compose
from portal.settings import resolution
from portal.settings.saving import grant_moved, password_problem, uses_oauth
from portal.text import normalize_email
from portal.wire import probe
from portal.wire.diagnosis import filled
from portal.wire.texts import N_

TEST_SUBJECT = N_("Test mail from the mail portal")
# Stored in English (the test's state, the audit row) and translated when shown.
MSG_AUTHORIZE_FIRST = N_(
    "Save these settings and authorize the mailbox first: the test uses the saved authorization."
)
MSG_AUTHORIZE_AGAIN = N_(
    "Host, mailbox or provider changed: save, then authorize again. "
    "A saved authorization is never used for another server or mailbox."
)
MSG_RECIPIENT = N_("Enter the address the test mail goes to.")
MSG_RECIPIENT_INVALID = N_("Enter the address the test mail goes to. %(reason)s")
OUTCOME_OK = N_("succeeded")
OUTCOME_FAILED = N_("failed at %(step)s: %(problem)s")
OUTCOME_CANCELLED = N_("cancelled at %(step)s")
LOCK_KEY = "portal:test-running:{}"
# Seconds the test waits for the TCP connect and for the greeting: a firewall that drops
# packets, or a port that expects TLS first, is told within this, whatever the timeout.
CONNECT_TIMEOUT_SECONDS = 15


class TestRefusedError(Exception):
    """The test cannot start; `status` is the HTTP status to answer with.

    `text` is the English sentence (marked N_) and `params` its values, for a page to translate;
    `message` is the two put together.
    """

    def __init__(self, text: str, status: int = 422, params: dict[str, str] | None = None):
        # A lazily translated text from the settings rules is stored as its English source.
        self.text, self.params, self.status = str(text), params or {}, status
        self.message = filled(self.text, self.params)
        super().__init__(self.message)


@dataclass(frozen=True)
class Outcome:
    result: probe.ProbeResult
    server: str
    dkim: str  # whether the test mail was signed, and with which selector


def _body(company: Company | None, user: User, settings) -> str:
    """The test mail's text, in the language of the user who tests (see prepare)."""
    who = {"user": user.display_name, "company": company.name if company else ""}
    if company:
        scope = gettext(
            "This is a test mail sent by %(user)s from the mail settings of the company "
            "%(company)s.",
            **who,
        )
    else:
        scope = gettext(
            "This is a test mail sent by %(user)s from the mail settings of the global "
            "configuration.",
            **who,
        )
    tested = {
        "host": settings.host,
        "port": settings.port,
        "security": settings.security,
        "seconds": settings.timeout_seconds,
        "username": settings.username,
        "method": settings.auth_method,
    }
    if settings.uses_oauth:
        line = gettext(
            "Settings tested: %(host)s, port %(port)s, security %(security)s, authentication "
            "OAuth2 (%(method)s), mailbox %(username)s, timeout %(seconds)s s.",
            **tested,
        )
    elif settings.auth_enabled:
        line = gettext(
            "Settings tested: %(host)s, port %(port)s, security %(security)s, authentication "
            "on, user %(username)s, timeout %(seconds)s s.",
            **tested,
        )
    else:
        line = gettext(
            "Settings tested: %(host)s, port %(port)s, security %(security)s, authentication "
            "off, timeout %(seconds)s s.",
            **tested,
        )
    works = gettext(
        "If you can read this, mail from the portal can be delivered with these settings."
    )
    return f"{scope}\n\n{line}\n\n{works}\n"


@dataclass(frozen=True)
class Prepared:
    """A test found able to start: the settings, the password to use and the signed test mail."""

    settings: Any
    password: str | None = field(repr=False)
    auth_config_id: int | None
    recipient: str
    sender: str
    message: bytes
    dkim: str


def prepare(
    values: dict[str, Any],
    typed_password: str,
    saved: MailConfig | None,
    company: Company | None,
    user: User,
    recipient: str,
) -> Prepared:
    """Check these settings values (saved or not) can be tested; TestRefusedError if not."""
    typed = typed_password
    password = None
    auth_config_id = saved.id if saved is not None else None
    if "auth_enabled" not in values:
        # The company follows the global authentication, hence the global server too: the
        # global credentials go only where resolve() sends them.
        password, auth_config_id = _inherited_auth(company)
    elif uses_oauth(values):
        if saved is None or saved.grant is None:
            raise TestRefusedError(MSG_AUTHORIZE_FIRST)
        if grant_moved(saved, values):
            raise TestRefusedError(MSG_AUTHORIZE_AGAIN)
    elif values["auth_enabled"]:
        problem = password_problem(saved, values, typed, remove=False)
        if problem:
            raise TestRefusedError(problem)
        password = typed or crypto.decrypt(saved.password_encrypted)
    settings = resolution.resolve_for_test(company, values, auth_config_id)
    if not recipient.strip():
        raise TestRefusedError(MSG_RECIPIENT)
    try:
        recipient = normalize_email(recipient, settings.internal_domain_names)
    except EmailNotValidError as exc:
        raise TestRefusedError(MSG_RECIPIENT_INVALID, params={"reason": str(exc)}) from exc
    try:
        with i18n.speaking(i18n.language_of(user)):  # the worker has no request to ask
            composed = compose(
                settings,
                company=company,
                user=None,
                to=[recipient],
                subject=gettext(TEST_SUBJECT),
                text=_body(company, user, settings),
            )
    except MailValidationError as exc:
        raise TestRefusedError(" ".join(map(str, exc.errors.values()))) from exc
    # Signed as real mail is; the company's tab tests the company's own settings, hence its keys.
    scope = company.id if company is not None else None
    signed = Signer().sign(composed.raw, scope, need_domain=True)  # its summary names the domain
    return Prepared(
        settings,
        password,
        auth_config_id,
        recipient,
        composed.envelope_from,
        signed.raw,
        signed.summary,
    )


def _inherited_auth(company: Company | None) -> tuple[str | None, int | None]:
    """The password and the authorizing row of the authentication in force for a company."""
    in_force = resolution.resolve(company)
    if in_force.uses_oauth:
        glob = resolution.global_config()
        if glob is None or glob.grant is None:
            raise TestRefusedError(MSG_AUTHORIZE_FIRST)
        return None, in_force.auth_config_id
    if in_force.auth_enabled and in_force.password_encrypted:
        return crypto.decrypt(in_force.password_encrypted), in_force.auth_config_id
    return None, in_force.auth_config_id


def run(
    values: dict[str, Any],
    typed_password: str,
    saved: MailConfig | None,
    company: Company | None,
    user: User,
    recipient: str,
    *,
    progress: Callable[[list[probe.Step]], None] | None = None,
    cancel: probe.Cancel | None = None,
) -> Outcome:
    """Test these settings values against the real server and audit the outcome (uncommitted).

    TestRefusedError when the test cannot start. Connecting and the greeting wait at most
    CONNECT_TIMEOUT_SECONDS; the later steps the configured timeout.
    """
    prepared = prepare(values, typed_password, saved, company, user, recipient)
    config = smtp_config.client_config(prepared.settings, password=prepared.password)
    config = replace(config, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    if config.token_source is not None:
        auth_config_id = prepared.auth_config_id

        # A test asks the provider for a new token: a cached one would hide a revoked grant.
        def fresh_first(rejected: str | None) -> str:
            return tokens.access_token(auth_config_id, rejected, fresh=rejected is None)

        config = replace(config, token_source=fresh_first)
    result = probe.run(
        config,
        sender=prepared.sender,
        recipient=prepared.recipient,
        message=prepared.message,
        policy=resolution.egress_policy(),
        deadline=config.timeout,
        progress=progress,
        cancel=cancel,
    )
    if not result.cancelled:
        metrics.CONNECTION_TESTS.labels(result="ok" if result.ok else result.failed_step).inc()
    server = f"{config.host}:{config.port}"
    label = probe.STEP_LABELS.get(result.failed_step or "", result.failed_step)
    # The row keeps the English sentence; the history translates it when shown.
    if result.cancelled:
        outcome = OUTCOME_CANCELLED % {"step": label}
    elif result.ok:
        outcome = OUTCOME_OK
    else:
        outcome = OUTCOME_FAILED % {"step": label, "problem": result.diagnosis.problem}
    audit.record("mail_settings.test", {"server": server, "result": outcome}, user, company)
    return Outcome(result, server, prepared.dkim)


def lock_key(company_id: int | None) -> str:
    """One running test per company (and one for the global page), across web and workers."""
    return LOCK_KEY.format(company_id if company_id is not None else "global")
