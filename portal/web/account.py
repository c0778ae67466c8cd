"""My account: who is logged in, the language the portal speaks to them, and ending sessions."""

from flask import Blueprint, current_app, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import ValidationError

from portal import i18n
from portal.extensions import db
from portal.text import duration_text
from portal.web import sessions
from portal.web.htmx import UNPROCESSABLE, navigate, respond

bp = Blueprint("account", __name__, url_prefix="/account")
MSG_LOGGED_OUT_EVERYWHERE = _l("You are logged out in every browser. Log in again to continue.")
AUTOMATIC = ""  # the select's value for "no choice of my own": stored as NULL


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        automatic = _l("Automatic (company default or browser)")
        self.language.choices = [(AUTOMATIC, automatic), *i18n.LANGUAGES.items()]

    def validate_language(self, field) -> None:
        # Checked here rather than by the select, so the message is the portal's own.
        if field.data != AUTOMATIC and i18n.known(field.data) is None:
            raise ValidationError(_l("Choose one of the listed languages."))


def _page(form: LanguageForm, status: int = 200):
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    idle = current_app.config["SESSION_IDLE_SECONDS"]
    return respond(
        "account/index.html",
        "account/_language.html",
        status,
        form=form,
        lifetime=duration_text(int(lifetime)),
        idle=duration_text(int(idle)),
    )


@bp.get("")
@login_required
def show():
    return _page(LanguageForm(formdata=None, data={"language": current_user.language or ""}))


@bp.post("/language")
@login_required
def update_language():
    """Save the user's language (empty: none of their own), then show the page in it. Commits."""
    form = LanguageForm()
    if not form.validate():
        return _page(form, UNPROCESSABLE)
    current_user.language = form.language.data or None
    db.session.commit()
    refresh()  # the notice below is already in the language just chosen
    flash(_("Language saved."))
    return navigate(url_for("account.show"))


@bp.post("/logout-everywhere")
@login_required
def logout_everywhere():
    notice = str(MSG_LOGGED_OUT_EVERYWHERE)  # in the user's language, before they are gone
    sessions.end_everywhere(current_user)
    flash(notice)
    return redirect(url_for("auth.login"))
