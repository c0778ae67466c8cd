"""Who may see what on the screens: superuser-only views, and the current user's tenant scope."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from portal import logs, tenancy
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


def current_scope() -> tenancy.Scope:
    """Whose rows the current user may see; 404 for a user of no company."""
    scope = tenancy.scope_of(current_user)
    if scope is None:
        abort(404)
    if isinstance(scope, int):
        logs.bind(company_id=scope)
    return scope


def visible_company(company_id: int) -> Company:
    """The company if the current user may see it; 404 otherwise, so ids reveal nothing."""
    company = tenancy.find(Company, company_id, current_scope())
    if company is None:
        abort(404)
    logs.bind(company_id=company.id)
    return company
