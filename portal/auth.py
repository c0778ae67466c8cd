"""Log in, log out, and set a password from a one-time link."""

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal import accounts
from portal.extensions import db, login_manager
from portal.forms import LoginForm, SetPasswordForm
from portal.models import User

bp = Blueprint("auth", __name__)
MSG_BAD_LOGIN = "Email or password is incorrect."


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


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
            login_user(user)
            return redirect(home_url())
        error = MSG_BAD_LOGIN
    status = 422 if form.errors or error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    user = accounts.user_for_token(token)
    if user is None:
        return render_template("auth/link_invalid.html"), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        accounts.set_password(user, form.password.data)
        db.session.commit()
        login_user(user)
        return redirect(home_url())
    status = 422 if form.errors else 200
    return render_template("auth/set_password.html", form=form, user=user), status
