"""My account: who is logged in, and ending their sessions in every browser."""

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from portal.text import duration_text
from portal.web import sessions

bp = Blueprint("account", __name__, url_prefix="/account")
MSG_LOGGED_OUT_EVERYWHERE = "You are logged out in every browser. Log in again to continue."


@bp.get("")
@login_required
def show():
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    idle = current_app.config["SESSION_IDLE_SECONDS"]
    return render_template(
        "account/index.html",
        lifetime=duration_text(int(lifetime)),
        idle=duration_text(int(idle)),
    )


@bp.post("/logout-everywhere")
@login_required
def logout_everywhere():
    sessions.end_everywhere(current_user)
    flash(MSG_LOGGED_OUT_EVERYWHERE)
    return redirect(url_for("auth.login"))
