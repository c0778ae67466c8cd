"""User accounts: password hashing, login checks, one-time set-password links and their mails."""

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, render_template
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal import mail
from portal.exceptions import MailValidationError
from portal.extensions import db
from portal.models import Company, OutboxMessage, User

log = logging.getLogger(__name__)
hasher = PasswordHasher()
# Verified when the email is unknown, so a failed login takes as long either way.
DUMMY_HASH = hasher.hash("not-a-real-password")
# What a link is for; each purpose has its own lifetime (seconds) in the config.
INVITATION = "invitation"
RESET = "reset"
PURPOSES = (INVITATION, RESET)
DEFAULT_RESET_MAX_AGE_SECONDS = 3600
RESET_SUBJECT = "Reset your password for the mail portal"


def set_password(user: User, password: str) -> None:
    user.password_hash = hasher.hash(password)


def authenticate(email: str, password: str) -> User | None:
    """The user whose email and password match, or None."""
    user = find_by_email(email)
    try:
        hasher.verify(user.password_hash if user and user.password_hash else DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        set_password(user, password)
    return user


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="set-password")


def _fingerprint(user: User) -> str:
    # Changes when the password does, so a link works once.
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def link_max_age(purpose: str) -> int:
    """Seconds a link made for this purpose stays valid."""
    config = current_app.config
    if purpose == RESET:
        return int(config.get("PASSWORD_RESET_MAX_AGE_SECONDS", DEFAULT_RESET_MAX_AGE_SECONDS))
    return int(config["INVITATION_MAX_AGE_SECONDS"])


def password_token(user: User, purpose: str = INVITATION) -> str:
    """A signed link token that lets the user set a password once."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown link purpose: {purpose!r}")
    return _serializer().dumps({"uid": user.id, "fp": _fingerprint(user), "p": purpose})


def user_for_token(token: str, max_age: int | None = None) -> User | None:
    """The user a valid, unused, unexpired token belongs to, or None.

    The token's purpose decides how long it lives, unless max_age (seconds) is given.
    """
    serializer = _serializer()
    try:
        data: Any = serializer.loads(token)  # the signature first, to learn the purpose
        # Tokens made before links had a purpose were invitations.
        purpose = data.get("p", INVITATION) if isinstance(data, dict) else None
        if purpose not in PURPOSES:
            return None
        serializer.loads(token, max_age=link_max_age(purpose) if max_age is None else max_age)
    except BadSignature:
        return None
    user = db.session.get(User, data.get("uid"))
    if user is None or data.get("fp") != _fingerprint(user):
        return None
    return user


def duration_text(seconds: int) -> str:
    """'7 days', '1 hour', '30 minutes': how long a link lives, for people."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _render(name: str, **context) -> tuple[str, str]:
    """The text and the (autoescaped) HTML body of a system mail."""
    base = f"mail_templates/{name}"
    return render_template(f"{base}.txt", **context), render_template(f"{base}.html", **context)


def send_invitation(user: User, company: Company, link: str) -> OutboxMessage:
    """Queue the system mail inviting a company admin; MailValidationError if it cannot be."""
    valid_for = duration_text(link_max_age(INVITATION))
    text, html = _render("invitation", user=user, company=company, link=link, valid_for=valid_for)
    subject = f"You are invited to manage mail for {company.name}"
    return mail.send(company, to=[user.email], subject=subject, text=text, html=html)


def request_reset(email: str, link_for: Callable[[str], str]) -> OutboxMessage | None:
    """Queue a reset-link mail if an account may log in with this email; None otherwise.

    Unknown addresses go through the same token and rendering work, so the answer
    takes about as long; a mail that cannot be queued is logged, never reported.
    """
    user = find_by_email(email)
    if user is not None and not (user.is_superuser or user.company_id is not None):
        user = None  # a removed admin has nothing to log in to
    target = user or User(id=0, email=email)  # a stand-in, never stored: same work, no mail
    link = link_for(password_token(target, RESET))
    valid_for = duration_text(link_max_age(RESET))
    text, html = _render("reset", user=target, link=link, valid_for=valid_for)
    if user is None:
        return None
    company = None if user.is_superuser else user.company
    try:
        return mail.send(company, to=[user.email], subject=RESET_SUBJECT, text=text, html=html)
    except MailValidationError as exc:
        log.warning("Password reset mail for user %s not queued: %s", user.id, exc)
        return None
