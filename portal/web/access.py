"""Who may see what: superuser-only views and the tenant filter for company objects."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from portal.extensions import db
from portal.models import Company


def superuser_required(view):
    """Logged-in superusers only; everyone else who is logged in gets 403."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_superuser:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def visible_company(company_id: int) -> Company:
    """The company if the current user may see it; 404 otherwise, so ids reveal nothing."""
    company = db.session.get(Company, company_id)
    if company is None:
        abort(404)
    if not current_user.is_superuser and current_user.company_id != company.id:
        abort(404)
    return company
