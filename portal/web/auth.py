"""Log in, log out, ask for a reset link, and set a password from a one-time link."""

import hashlib
import math

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField

from portal import accounts, audit, i18n, login_throttle
from portal.exceptions import LoginThrottledError
from portal.extensions import db, limiter
from portal.outbox import system_mail
from portal.text import duration_text
from portal.web import sessions
from portal.web.forms import LoginForm, SetPasswordForm, max_length, required, single_line
from portal.web.links import external_url

bp = Blueprint("auth", __name__)
MSG_BAD_LOGIN = _l("Email or password is incorrect.")
MSG_RESET_SENT = _l("If an account exists for that address, a reset link is on its way.")
UNKNOWN_ACCOUNT = "an address with no account"  # the typed text may be a password: not kept


class ForgotPasswordForm(FlaskForm):
    # Any non-empty single line: a syntax check could tell stored addresses from others.
    email = StringField(
        _l("Email"), [required(_l("Enter your email.")), single_line, max_length(320)]
    )


def home_url() -> str:
    if current_user.is_superuser:
        return url_for("companies.index")
    if current_user.company_id is None:
        abort(403)
    return url_for("mail_settings.company", company_id=current_user.company_id)


@bp.get("/")
@login_required
def index():
    return redirect(home_url())


def _paused(form: LoginForm, wait: float):
    """The login page saying how long to wait; no password was checked."""
    seconds = math.ceil(wait)
    error = _(
        "Too many failed log-ins for this account or from your network. Try again in %(wait)s.",
        wait=duration_text(seconds),
    )
    page = render_template("auth/login.html", form=form, error=error)
    return page, 429, {"Retry-After": str(seconds)}


def _record_failure(email: str, client: str, attempt: login_throttle.Attempt) -> None:
    """A failed log-in in the history of the account's company (global for others); commits."""
    user = accounts.find_by_email(email)
    changes = {"account": user.email if user else UNKNOWN_ACCOUNT, "client": client}
    if attempt.wait:
        with i18n.speaking(i18n.DEFAULT_LANGUAGE):  # a stored row: its English source text
            changes["paused"] = duration_text(math.ceil(attempt.wait))
    audit.record("login.failed", changes, None, user.company if user else None)
    db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        client = get_remote_address()
        try:
            attempt = login_throttle.begin(form.email.data, client)
        except LoginThrottledError as exc:
            return _paused(form, exc.retry_after)
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            login_throttle.succeeded(attempt)
            db.session.commit()
            sessions.start(user)
            return redirect(home_url())
        _record_failure(form.email.data, client, attempt)
        error = MSG_BAD_LOGIN
    status = 422 if form.errors or error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    # The cookie is worthless afterwards, in this browser and wherever it was copied to.
    if current_user.is_authenticated:
        sessions.end_everywhere(current_user)
    return redirect(url_for("auth.login"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    user = accounts.user_for_token(token)
    if user is None:
        return render_template("auth/link_invalid.html"), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        accounts.set_password(user, form.password.data)  # ends the user's other sessions
        db.session.commit()
        sessions.start(user)
        return redirect(home_url())
    status = 422 if form.errors else 200
    return render_template("auth/set_password.html", form=form, user=user), status


def _reset_limit() -> str:
    return current_app.config["PASSWORD_RESET_RATE_LIMIT"]


def _reset_client_limit() -> str:
    return current_app.config["PASSWORD_RESET_CLIENT_RATE_LIMIT"]


def _reset_address() -> str:
    """The per-address limit's key: the typed address as the lookup reads it, hashed."""
    typed = request.form.get("email", "").strip().lower()
    return "reset-address:" + hashlib.sha256(typed.encode()).hexdigest()


def _reset_client() -> str:
    return "reset-client:" + get_remote_address()


LINK_STANDIN = "-"  # noqa: S105 - stands where the worker puts the token


def _link_prefix() -> str:
    """The set-password URL under the configured base URL, without a token; the worker adds one."""
    return external_url("auth.set_password", token=LINK_STANDIN).removesuffix(LINK_STANDIN)


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_reset_limit, key_func=_reset_address, methods=["POST"])
@limiter.limit(_reset_client_limit, key_func=_reset_client, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    sent = None
    if form.validate_on_submit():
        system_mail.request_reset(form.email.data, _link_prefix())
        sent = MSG_RESET_SENT
    status = 422 if form.errors else 200
    return render_template("auth/forgot_password.html", form=form, sent=sent), status


@bp.errorhandler(429)
def too_many(exc):
    """The forgot-password page saying to wait."""
    form = ForgotPasswordForm(formdata=None)
    limit = getattr(exc, "description", "")
    error = _("Too many reset requests (%(limit)s). Try again later.", limit=limit)
    return render_template("auth/forgot_password.html", form=form, error=error), 429
