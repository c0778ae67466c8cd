"""Companies' API keys: create (shown once), list, revoke."""

import hashlib
import secrets
from datetime import timedelta

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField

from portal import audit
from portal.access import visible_company
from portal.extensions import db
from portal.forms import max_length, required, single_line
from portal.htmx import UNPROCESSABLE, is_htmx, respond
from portal.models import ApiKey, Company, User, as_utc, utcnow

bp = Blueprint("apikeys", __name__)

KEY_PREFIX = "pk_"
KEY_RANDOM_BYTES = 32
SHOWN_PREFIX_CHARS = 8
# last_used_at is written at most this often per key: a busy key must not serialize on its row.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Key name",
        [required("Name the key, e.g. after the service using it."), single_line, max_length(120)],
    )


def hash_key(token: str) -> str:
    """The stored form of a key: its SHA-256, hex (keys are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create(company: Company, name: str, user: User | None) -> tuple[ApiKey, str]:
    """A new key for the company, audited; returns the row and the key, which is never stored."""
    token = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key = ApiKey(
        company_id=company.id,
        name=name,
        prefix=token[:SHOWN_PREFIX_CHARS],
        key_hash=hash_key(token),
        created_by_id=user.id if user is not None else None,
    )
    db.session.add(key)
    audit.record("apikey.create", {"name": {"old": None, "new": name}}, user, company)
    return key, token


def revoke(key: ApiKey, user: User | None) -> None:
    """Stop the key working from now on; revoking twice changes nothing."""
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    audit.record("apikey.revoke", {"name": {"old": key.name, "new": None}}, user, key.company)


def authenticate(token: str) -> ApiKey | None:
    """The live key with this value, its use noted; None for unknown or revoked keys."""
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - as_utc(key.last_used_at) >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key


def company_keys(company: Company) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.company_id == company.id)
    return list(db.session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))


def _section(company: Company, form: ApiKeyForm, new_key: str | None = None, status: int = 200):
    return respond(
        "apikeys/index.html",
        "apikeys/_response.html",
        status,
        company=company,
        form=form,
        keys=company_keys(company),
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
    _, token = create(company, form.name.data.strip(), current_user)
    db.session.commit()
    # No redirect: the key exists only in this response.
    return _section(company, ApiKeyForm(formdata=None), new_key=token)


@bp.post("/companies/<int:company_id>/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(company_id: int, key_id: int):
    company = visible_company(company_id)
    key = db.session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.company_id == company.id)
    )
    if key is None:
        return render_template("errors/404.html"), 404
    revoke(key, current_user)
    db.session.commit()
    if not is_htmx():
        return redirect(url_for("apikeys.index", company_id=company.id))
    return _section(company, ApiKeyForm(formdata=None))
