"""Test connection behind the screens: which password, the test mail, one at a time, the audit."""

from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import RedisError

from portal import audit, crypto, metrics, redis_client
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

TEST_SUBJECT = "Test mail from the mail portal"
MSG_AUTHORIZE_FIRST = (
    "Save these settings and authorize the mailbox first: the test uses the saved authorization."
)
MSG_AUTHORIZE_AGAIN = (
    "Host, mailbox or provider changed: save, then authorize again. "
    "A saved authorization is never used for another server or mailbox."
)
LOCK_KEY = "portal:test-running:{}"


class TestRefusedError(Exception):
    """The test cannot start; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Outcome:
    result: probe.ProbeResult
    server: str
    dkim: str  # whether the test mail was signed, and with which selector


def _body(company: Company | None, user: User, settings) -> str:
    scope = f"the company {company.name}" if company else "the global configuration"
    auth = f"on, user {settings.username}" if settings.auth_enabled else "off"
    if settings.uses_oauth:
        auth = f"OAuth2 ({settings.auth_method}), mailbox {settings.username}"
    return (
        f"This is a test mail sent by {user.display_name} from the mail settings of {scope}.\n\n"
        f"Settings tested: {settings.host}, port {settings.port}, security {settings.security}, "
        f"authentication {auth}, timeout {settings.timeout_seconds} s.\n\n"
        "If you can read this, mail from the portal can be delivered with these settings.\n"
    )


def run(
    values: dict[str, Any],
    typed_password: str,
    saved: MailConfig | None,
    company: Company | None,
    user: User,
    recipient: str,
) -> Outcome:
    """Test these settings values (saved or not); TestRefusedError when the test cannot start."""
    typed = typed_password
    password = None
    if uses_oauth(values):
        if saved is None or saved.grant is None:
            raise TestRefusedError(MSG_AUTHORIZE_FIRST)
        if grant_moved(saved, values):
            raise TestRefusedError(MSG_AUTHORIZE_AGAIN)
    elif values["auth_enabled"]:
        problem = password_problem(saved, values, typed, remove=False)
        if problem:
            raise TestRefusedError(problem)
        password = typed or crypto.decrypt(saved.password_encrypted)
    try:
        recipient = normalize_email(recipient)
    except Exception as exc:  # noqa: BLE001 - every reason gets the same message
        raise TestRefusedError("Enter the address the test mail goes to.") from exc
    auth_config_id = saved.id if saved is not None else None
    settings = resolution.resolve_for_test(company, values, auth_config_id)
    try:
        composed = compose(
            settings,
            company=company,
            user=None,
            to=[recipient],
            subject=TEST_SUBJECT,
            text=_body(company, user, settings),
        )
    except MailValidationError as exc:
        raise TestRefusedError(" ".join(exc.errors.values())) from exc
    # Signed as real mail is; the company's tab tests the company's own settings, hence its keys.
    scope = company.id if company is not None else None
    signed = Signer().sign(composed.raw, scope, need_domain=True)  # its summary names the domain
    config = smtp_config.client_config(settings, password=password)
    if config.token_source is not None:
        # A test asks the provider for a new token: a cached one would hide a revoked grant.
        def fresh_first(rejected: str | None) -> str:
            return tokens.access_token(auth_config_id, rejected, fresh=rejected is None)

        config = replace(config, token_source=fresh_first)
    with _one_at_a_time(company, config.timeout):
        result = probe.run(
            config,
            sender=composed.envelope_from,
            recipient=recipient,
            message=signed.raw,
            policy=resolution.egress_policy(),
            deadline=config.timeout,
        )
    metrics.CONNECTION_TESTS.labels(result="ok" if result.ok else result.failed_step).inc()
    server = f"{config.host}:{config.port}"
    label = probe.STEP_LABELS.get(result.failed_step or "", result.failed_step)
    outcome = "succeeded" if result.ok else f"failed at {label}: {result.diagnosis.problem}"
    audit.record("mail_settings.test", {"server": server, "result": outcome}, user, company)
    return Outcome(result, server, signed.summary)


class _one_at_a_time:
    """One running test per company (and one for the global page), across web workers."""

    def __init__(self, company: Company | None, timeout: float):
        self.key = LOCK_KEY.format(company.id if company else "global")
        # Opening and sending each get the timeout; the lock outlives both.
        self.ttl = int(timeout * 2 + 30)

    def __enter__(self):
        try:
            acquired = redis_client.connection().set(self.key, 1, nx=True, ex=self.ttl)
        except RedisError:
            acquired = True  # without Redis the per-user rate limit still holds
        if not acquired:
            raise TestRefusedError("A test of these settings is already running: wait for it.", 429)
        return self

    def __exit__(self, *exc_info):
        with suppress(RedisError):  # else the lock expires by itself
            redis_client.connection().delete(self.key)
