"""User accounts: password hashing, login checks and one-time set-password links."""

import hashlib
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import User

hasher = PasswordHasher()
# What a link is for; each purpose has its own lifetime (seconds) in the config.
INVITATION = "invitation"
RESET = "reset"
PURPOSES = (INVITATION, RESET)


def set_password(user: User, password: str) -> None:
    """A new password, which ends every session opened with the old one."""
    user.password_hash = hasher.hash(password)
    user.session_generation = (user.session_generation or 0) + 1


def authenticate(email: str, password: str) -> User | None:
    """The user whose email and password match, or None."""
    user = find_by_email(email)
    dummy = _dummy_hash()  # known or not: the first login of a process pays for it either way
    try:
        hasher.verify(user.password_hash if user and user.password_hash else dummy, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)  # the same password: sessions stay
    return user


@cache
def _dummy_hash() -> str:
    """Verified when the email is unknown, so a failed login takes as long either way.

    Made on first use, not at import: the worker and the console seldom check a password.
    """
    return hasher.hash("not-a-real-password")


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
        return int(config["PASSWORD_RESET_MAX_AGE_SECONDS"])
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
