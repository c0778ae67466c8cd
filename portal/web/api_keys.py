"""A company's API keys tab: create a key (shown once), list and revoke them."""

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField

from portal import audit, tenancy
from portal.extensions import db
from portal.keys import api_keys
from portal.models import ApiKey, Company
from portal.web.access import visible_company
from portal.web.forms import max_length, required, single_line
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond

bp = Blueprint("apikeys", __name__)


class ApiKeyForm(FlaskForm):
    name = StringField(
        _l("Key name"),
        [
            required(_l("Name the key, e.g. after the service using it.")),
            single_line,
            max_length(120),
        ],
    )


def _section(company: Company, form: ApiKeyForm, new_key: str | None = None, status: int = 200):
    return respond(
        "apikeys/index.html",
        "apikeys/_response.html",
        status,
        company=company,
        form=form,
        keys=api_keys.company_keys(company),
        new_key=new_key,
        history=audit.recent(company),
    )


@bp.route("/companies/<int:company_id>/api-keys", methods=["GET", "POST"])
@login_required
def index(company_id: int):
    company = visible_company(company_id)
    if request.method == "GET":
        return _section(company, ApiKeyForm(formdata=None))
    form = ApiKeyForm()
    if not form.validate():
        return _section(company, form, status=UNPROCESSABLE)
    _, token = api_keys.create(company, form.name.data.strip(), current_user)
    db.session.commit()
    # No redirect: the key exists only in this response.
    return _section(company, ApiKeyForm(formdata=None), new_key=token)


@bp.post("/companies/<int:company_id>/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(company_id: int, key_id: int):
    company = visible_company(company_id)
    key = tenancy.find(ApiKey, key_id, company.id)
    if key is None:
        return render_template("errors/404.html"), 404
    api_keys.revoke(key, current_user)
    db.session.commit()
    if not is_htmx():
        return redirect(url_for("apikeys.index", company_id=company.id))
    return _section(company, ApiKeyForm(formdata=None))
