"""User accounts: password hashing, login checks and one-time set-password links."""

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import User

hasher = PasswordHasher()
# Verified when the email is unknown, so a failed login takes as long either way.
DUMMY_HASH = hasher.hash("not-a-real-password")


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


def password_token(user: User) -> str:
    """A signed link token that lets the user set a password once."""
    return _serializer().dumps({"uid": user.id, "fp": _fingerprint(user)})


def user_for_token(token: str) -> User | None:
    """The user a valid, unused, unexpired token belongs to, or None."""
    max_age = current_app.config["INVITATION_MAX_AGE_SECONDS"]
    try:
        data = _serializer().loads(token, max_age=max_age)
    except BadSignature:
        return None
    user = db.session.get(User, data.get("uid"))
    if user is None or data.get("fp") != _fingerprint(user):
        return None
    return user
