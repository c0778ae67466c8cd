"""Connecting a mailbox with OAuth2: Authorize, the provider's callback, Disconnect."""

import json

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from redis.exceptions import RedisError

from portal import audit, redis_client
from portal.exceptions import OAuthTokenError
from portal.extensions import db
from portal.keys import oauth
from portal.models import Company, MailConfig
from portal.outbox import store
from portal.settings.resolution import global_config
from portal.web.access import visible_company
from portal.web.htmx import UNPROCESSABLE, navigate
from portal.web.links import external_url

bp = Blueprint("oauth", __name__)
STATE_KEY = "portal:oauth-state:{}"
STATE_SECONDS = 600  # time to consent at the provider
SESSION_STATE = "oauth_state"
MSG_SAVE_FIRST = _l(
    "Save the OAuth2 settings first (method, mailbox, client ID and secret, endpoints): "
    "authorization uses the saved values."
)


def redirect_uri() -> str:
    """The callback address to register with the provider."""
    return current_app.config.get("OAUTH_REDIRECT_URI") or external_url("oauth.callback")


def _target(company_id: int | None) -> tuple[MailConfig | None, Company | None]:
    """The configuration the current user may connect: the global one or a company's own."""
    if company_id is None:
        if not current_user.is_superuser:
            abort(403)
        return global_config(), None
    company = visible_company(company_id)
    return company.mail_config, company


def _settings_page(company: Company | None) -> str:
    if company is None:
        return url_for("mail_settings.global_settings")
    return url_for("mail_settings.company", company_id=company.id)


def shown(error: oauth.OAuthFlowError | oauth.EndpointRefusedError) -> str:
    """An OAuth2 error's message in the page's language (its reason too, when a known one)."""
    values = dict(error.values)
    if isinstance(values.get("reason"), str):
        values["reason"] = _(values["reason"])
    return _(error.text, **values)


def _refusal(message) -> tuple:
    return render_template("mail/_oauth_message.html", message=message), UNPROCESSABLE


def ready(config: MailConfig | None) -> bool:
    """Whether the saved configuration has what the authorization needs."""
    return bool(
        config is not None
        and config.uses_oauth
        and config.username
        and config.oauth_client_id
        and config.has_client_secret
        and config.oauth_authorize_url
        and config.oauth_token_url
    )


@bp.post("/settings/mail/oauth/authorize", defaults={"company_id": None})
@bp.post("/companies/<int:company_id>/email/oauth/authorize")
@login_required
def authorize(company_id: int | None):
    """Send the admin to the provider's consent page (authorization code with PKCE)."""
    config, company = _target(company_id)
    if not ready(config) or (company is not None and not company.use_own_mail_settings):
        return _refusal(MSG_SAVE_FIRST)
    try:
        oauth.check_url(config.oauth_token_url)
    except oauth.EndpointRefusedError as exc:
        return _refusal(shown(exc))
    callback = redirect_uri()
    url, state, verifier = oauth.authorization_url(config, callback)
    pending = {
        "config_id": config.id,
        "company_id": company.id if company else None,
        "user_id": current_user.id,
        "verifier": verifier,
        "redirect_uri": callback,
    }
    try:
        redis_client.connection().set(
            STATE_KEY.format(state), json.dumps(pending), ex=STATE_SECONDS
        )
    except RedisError:
        return _refusal(_("The authorization cannot start now (Redis is unreachable): try again."))
    session[SESSION_STATE] = state  # the callback must come back to this browser
    return navigate(url)


def _pending(state: str) -> dict | None:
    """The authorization this browser started with `state`, used once."""
    expected = session.pop(SESSION_STATE, None)
    if not state or state != expected:
        return None
    try:
        raw = redis_client.connection().getdel(STATE_KEY.format(state))
    except RedisError:
        return None
    pending = json.loads(raw) if raw else None
    if pending is None or pending["user_id"] != current_user.id:
        return None
    return pending


@bp.get("/oauth/callback")
@login_required
def callback():
    """The provider sends the admin back here with a code (or an error)."""
    pending = _pending(request.args.get("state", ""))
    if pending is None:
        return render_template("mail/oauth_invalid.html"), 400
    config, company = _target(pending["company_id"])
    if config is None or config.id != pending["config_id"] or not config.uses_oauth:
        return render_template("mail/oauth_invalid.html"), 400
    back = _settings_page(company)
    if request.args.get("error") or not request.args.get("code"):
        error = request.args.get("error", "")[:100] or _("no code")
        flash(
            _(
                "The provider did not authorize the mailbox (%(error)s). Nothing changed.",
                error=error,
            ),
            "error",
        )
        return redirect(back, 303)
    try:
        grant = oauth.exchange_code(
            config, request.args["code"], pending["verifier"], pending["redirect_uri"]
        )
    except (oauth.OAuthFlowError, oauth.EndpointRefusedError) as exc:
        db.session.rollback()
        flash(shown(exc), "error")
        return redirect(back, 303)
    except OAuthTokenError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back, 303)
    audit.record(
        "mail_settings.oauth",
        {"oauth": f"connected as {grant.connected_as}"},
        current_user,
        company,
    )
    db.session.commit()
    woken = store.wake(config)
    connected = _("Connected as %(mailbox)s.", mailbox=grant.connected_as)
    if woken:
        waiting = ngettext(
            "%(num)d waiting mail is on its way.", "%(num)d waiting mails are on their way.", woken
        )
        connected = f"{connected} {waiting}"
    flash(connected)
    return redirect(back, 303)


@bp.post("/settings/mail/oauth/disconnect", defaults={"company_id": None})
@bp.post("/companies/<int:company_id>/email/oauth/disconnect")
@login_required
def disconnect(company_id: int | None):
    """Forget the mailbox's tokens here, and revoke them at the provider when it can."""
    config, company = _target(company_id)
    refresh = oauth.forget(config) if config is not None else None
    if refresh is not None:
        audit.record("mail_settings.oauth", {"oauth": "disconnected"}, current_user, company)
    db.session.commit()
    warning = oauth.revoke_remote(config, refresh) if refresh else None
    told = refresh and config.oauth_revoke_url and not warning
    disconnected = _("Disconnected: mail for this mailbox waits until it is authorized again.")
    if told:
        disconnected = f"{disconnected} {_('The provider revoked the authorization.')}"
    flash(disconnected)
    if warning:
        flash(
            _(
                "Forgotten here, but the provider could not be told to revoke it: %(reason)s",
                reason=shown(warning),
            ),
            "error",
        )
    return navigate(_settings_page(company))
