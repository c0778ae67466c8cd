"""Log in, log out, ask for a reset link, and set a password from a one-time link."""

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField

from portal import accounts
from portal.extensions import db, limiter
from portal.outbox import system_mail
from portal.web import sessions
from portal.web.forms import LoginForm, SetPasswordForm, max_length, required, single_line
from portal.web.links import external_url

bp = Blueprint("auth", __name__)
MSG_BAD_LOGIN = "Email or password is incorrect."
MSG_RESET_SENT = "If an account exists for that address, a reset link is on its way."


class ForgotPasswordForm(FlaskForm):
    # Any non-empty single line: a syntax check could tell stored addresses from others.
    email = StringField("Email", [required("Enter your email."), single_line, max_length(320)])


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


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            db.session.commit()
            sessions.start(user)
            return redirect(home_url())
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


def _reset_link(token: str) -> str:
    return external_url("auth.set_password", token=token)


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_reset_limit, key_func=get_remote_address, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    sent = None
    if form.validate_on_submit():
        system_mail.request_reset(form.email.data, _reset_link)
        sent = MSG_RESET_SENT
    status = 422 if form.errors else 200
    return render_template("auth/forgot_password.html", form=form, sent=sent), status


@bp.errorhandler(429)
def too_many(exc):
    """The forgot-password page saying to wait."""
    form = ForgotPasswordForm(formdata=None)
    limit = getattr(exc, "description", "")
    error = f"Too many reset requests ({limit}). Try again later."
    return render_template("auth/forgot_password.html", form=form, error=error), 429
