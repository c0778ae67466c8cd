"""Tenancy: which companies' rows a user (or an API key) may see, as one filter every query uses.

Another tenant's row is simply not found, so its id answers 404 like an unknown one.
"""

from sqlalchemy import Select, or_, select

from portal.extensions import db
from portal.models import Company, MailConfig, User

ALL = "all"  # scope: every company's rows and the global ones (the superuser)
GLOBAL = "global"  # scope: only rows of no company (mail sent with the global settings)
Scope = int | str  # a company id, ALL or GLOBAL


def scope_of(user: User) -> Scope | None:
    """Whose rows the user may see: all for the superuser, their company's, or None."""
    if user.is_superuser:
        return ALL
    return user.company_id


def _column(model):
    return model.id if model is Company else model.company_id


def scoped(query: Select, model, scope: Scope) -> Select:
    """The query narrowed to the rows of `model` that the scope may see."""
    if scope == ALL:
        return query
    if scope == GLOBAL:
        return query.where(_column(model).is_(None))
    return query.where(_column(model) == scope)


def find(model, row_id: int, scope: Scope):
    """The row with this id if the scope may see it, else None."""
    return db.session.scalar(scoped(select(model), model, scope).where(model.id == row_id))


def served_by(config: MailConfig, column):
    """Rows (by their company id `column`) of the companies whose mail this configuration sends.

    The global configuration serves mail of no company and of every company without its own
    authentication (a company's own server brings its own authentication).
    """
    if config.company_id is not None:
        return column == config.company_id
    own = (
        select(Company.id)
        .join(MailConfig, MailConfig.company_id == Company.id)
        .where(
            Company.use_own_mail_settings.is_(True),
            or_(MailConfig.override_server.is_(True), MailConfig.override_auth.is_(True)),
        )
    )
    return or_(column.is_(None), column.not_in(own))
