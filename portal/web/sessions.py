"""Which login sessions stay open: the user's session generation, the lifetime, the idle limit.

A session names the generation it was opened under (`User.get_id`); raising the generation
(logout, "log out everywhere", a new password) makes every cookie issued before it stale,
wherever it was copied to.
"""

import time

from flask import current_app, redirect, request, session, url_for
from flask_login import login_url, login_user, logout_user

from portal.extensions import db, login_manager
from portal.models import User
from portal.web.htmx import is_htmx, navigate

LOGIN_AT = "login_at"  # seconds since the epoch, set once at login
SEEN_AT = "seen_at"  # the last request that used the session


def _within_limits(now: float) -> bool:
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if not isinstance(login_at, int | float) or not isinstance(seen_at, int | float):
        return False
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    idle = float(current_app.config["SESSION_IDLE_SECONDS"])
    return now - login_at <= lifetime and now - seen_at <= idle


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a live session; None (and the session cleared) for a stale one."""
    uid, _, generation = user_id.partition(":")
    now = time.time()
    user = db.session.get(User, int(uid)) if uid.isdigit() and _within_limits(now) else None
    if user is None or generation != str(user.session_generation):
        session.clear()
        return None
    session[SEEN_AT] = now
    return user


@login_manager.unauthorized_handler
def log_in_first():
    """To the login page; a click in a page whose session ended loads it whole, not in a swap."""
    if is_htmx():
        return navigate(url_for("auth.login"))
    return redirect(login_url("auth.login", next_url=request.url))


def start(user: User) -> None:
    """Log the user in on a fresh session: nothing planted before (a CSRF token) survives."""
    session.clear()
    session.permanent = True  # the cookie lasts PERMANENT_SESSION_LIFETIME, not the browser
    login_user(user)
    session[LOGIN_AT] = session[SEEN_AT] = time.time()


def end_everywhere(user: User) -> None:
    """End every session of the user, this one included. Commits."""
    user.session_generation += 1
    db.session.commit()
    logout_user()
    session.clear()
