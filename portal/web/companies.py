"""Companies and their admins, managed by the superuser."""

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select

from portal import accounts, audit, tenancy
from portal.exceptions import MailValidationError
from portal.extensions import db
from portal.models import Company, User
from portal.outbox import system_mail
from portal.text import duration_text
from portal.web.access import superuser_required, visible_company
from portal.web.connection_texts import recognized
from portal.web.forms import CompanyEditForm, CompanyForm, InviteForm
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond
from portal.web.links import external_url

bp = Blueprint("companies", __name__, url_prefix="/companies")
MSG_NAME_TAKEN = _l("A company with this name exists already.")
MSG_OTHER_COMPANY = _l("This user is an admin of another company.")
MSG_SUPERUSER = _l("This user is a superuser and needs no company.")


def _all_companies() -> list[Company]:
    return list(db.session.scalars(select(Company).order_by(func.lower(Company.name))))


def _name_taken(name: str, company: Company | None = None) -> bool:
    query = select(Company.id).where(func.lower(Company.name) == name.lower())
    if company is not None:
        query = query.where(Company.id != company.id)
    return db.session.scalar(query) is not None


@bp.route("", methods=["GET", "POST"])
@superuser_required
def index():
    form = CompanyForm() if request.method == "POST" else CompanyForm(formdata=None)
    created = None
    if request.method == "POST" and form.validate():
        name = form.name.data.strip()
        if _name_taken(name):
            form.name.errors.append(MSG_NAME_TAKEN)
        else:
            created = Company(name=name)
            db.session.add(created)
            db.session.flush()
            audit.record(
                "company.create", {"name": {"old": None, "new": name}}, current_user, created
            )
            db.session.commit()
            if not is_htmx():
                return redirect(url_for("companies.index"))
            form = CompanyForm(formdata=None)
    status = UNPROCESSABLE if form.name.errors else 200
    return respond(
        "companies/index.html",
        "companies/_section.html",
        status,
        form=form,
        companies=_all_companies(),
        created=created,
    )


@bp.get("/<int:company_id>")
@login_required
def show(company_id: int):
    company = visible_company(company_id)
    return redirect(url_for("mail_settings.company", company_id=company.id))


@bp.get("/<int:company_id>/row")
@superuser_required
def row(company_id: int):
    company = visible_company(company_id)
    return render_template("companies/_row.html", company=company)


@bp.route("/<int:company_id>/rename", methods=["GET", "POST"])
@superuser_required
def rename(company_id: int):
    company = visible_company(company_id)
    if request.method == "GET":
        data = {"name": company.name, "default_language": company.default_language or ""}
        form = CompanyEditForm(formdata=None, data=data)
        return render_template("companies/_row_edit.html", company=company, form=form)
    form = CompanyEditForm()
    if form.validate():
        name = form.name.data.strip()
        if _name_taken(name, company):
            form.name.errors.append(MSG_NAME_TAKEN)
        else:
            language = form.default_language.data or None
            changes = _changes(company, name=name, default_language=language)
            company.name, company.default_language = name, language
            # One entry per save of the row, whatever of it changed, under the row's action.
            audit.record("company.rename", changes, current_user, company)
            db.session.commit()
            if not is_htmx():
                return redirect(url_for("companies.index"))
            return render_template("companies/_row.html", company=company)
    body = render_template("companies/_row_edit.html", company=company, form=form)
    return body, UNPROCESSABLE


def _changes(company: Company, **new) -> dict:
    """The audit's before/after of each property that changes."""
    old = {field: getattr(company, field) for field in new}
    return {f: {"old": old[f], "new": v} for f, v in new.items() if v != old[f]}


def invite(company: Company, email: str, name: str) -> tuple[User | None, str | None]:
    """Make the user with this email an admin of the company; (user, None) or (None, problem)."""
    user = accounts.find_by_email(email)
    if user is None:
        user = User(email=email, name=name, company=company)
        db.session.add(user)
        db.session.flush()
    elif user.is_superuser:
        return None, MSG_SUPERUSER
    elif user.company_id not in (None, company.id):
        return None, MSG_OTHER_COMPANY
    else:
        user.company = company
        user.name = name or user.name
    return user, None


def _send_invitation(user: User, company: Company) -> dict:
    """Queue the invitation mail; what the superuser sees about it (the link is the fallback)."""
    link = external_url("auth.set_password", token=accounts.password_token(user))
    invitation = {"email": user.email, "link": link, "problem": None}
    try:
        system_mail.send_invitation(user, company, link)
    except MailValidationError as exc:
        invitation["problem"] = " ".join(recognized(str(text)) for text in exc.errors.values())
    invitation["valid_for"] = duration_text(accounts.link_max_age(accounts.INVITATION))
    return invitation


def _admins_response(company: Company, form: InviteForm, invitation: dict | None = None):
    status = UNPROCESSABLE if any(f.errors for f in form) else 200
    return respond(
        "companies/admins.html",
        "companies/_admins.html",
        status,
        company=company,
        form=form,
        invitation=invitation,
        history=audit.recent(company),
    )


@bp.route("/<int:company_id>/admins", methods=["GET", "POST"])
@superuser_required
def admins(company_id: int):
    company = visible_company(company_id)
    if request.method == "GET":
        return _admins_response(company, InviteForm(formdata=None))
    form = InviteForm()
    invitation = None
    if form.validate():
        user, problem = invite(company, form.email.data, (form.name.data or "").strip())
        if problem:
            form.email.errors.append(problem)
        else:
            audit.record(
                "admin.assign", {"email": {"old": None, "new": user.email}}, current_user, company
            )
            db.session.commit()  # the admin exists even if the mail cannot be queued
            if not user.password_hash:
                invitation = _send_invitation(user, company)
            form = InviteForm(formdata=None)
    return _admins_response(company, form, invitation)


@bp.post("/<int:company_id>/admins/<int:user_id>/remove")
@superuser_required
def remove_admin(company_id: int, user_id: int):
    company = visible_company(company_id)
    user = tenancy.find(User, user_id, company.id)
    if user is None:
        return render_template("errors/404.html"), 404
    user.company_id = None
    user.session_generation += 1  # the removed admin's open sessions end now
    audit.record("admin.remove", {"email": {"old": user.email, "new": None}}, current_user, company)
    db.session.commit()
    db.session.refresh(company)
    return _admins_response(company, InviteForm(formdata=None))
