"""The global Mail page and each company's Email tab."""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from portal import audit, catcher, mime
from portal.extensions import db
from portal.keys import oauth
from portal.models import Company, MailConfig
from portal.outbox import store
from portal.settings.resolution import USUAL_PORTS, global_config, resolve
from portal.settings.saving import (
    apply,
    company_config,
    ensure_global_config,
    form_values,
    password_problem,
    prefill,
    secret_problem,
)
from portal.web import connection_test, dkim, mail_view, oauth_connect
from portal.web.access import superuser_required, visible_company
from portal.web.forms import CompanyMailForm, GlobalMailForm
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond, wants_partial

bp = Blueprint("mail_settings", __name__)
bp.register_blueprint(connection_test.bp)  # the Test connection button of both pages
SAVED = "Mail settings saved."


def _has_errors(form) -> bool:
    return any(field.errors for field in form)


def _save(form, config: MailConfig | None, company: Company | None) -> bool:
    """Validate and save in one transaction; False leaves errors on the form and saves nothing."""
    if not form.validate():
        return False
    values = form_values(form)
    new_password = form.password.data or ""
    problem = password_problem(config, values, new_password, form.remove_password.data)
    if problem:
        form.password.errors.append(problem)
    new_secret = form.oauth_client_secret.data or ""
    secret = secret_problem(config, values, new_secret)
    if secret:
        form.oauth_client_secret.errors.append(secret)
    if problem or secret:
        return False
    changes = apply(config or company_config(company), values, new_password, new_secret)
    if company is not None and not company.use_own_mail_settings:
        company.use_own_mail_settings = True
        changes["use_own_mail_settings"] = {"old": False, "new": True}
    audit.record("mail_settings.update", changes, current_user, company)
    db.session.commit()
    return True


def _provider_defaults(form) -> None:
    """Choosing a provider fills in its server, endpoints and scopes; all stay editable."""
    provider = oauth.PROVIDERS.get(form.auth_method.data)
    if request.form.get("_refresh") != "auth_method" or provider is None:
        return
    form.host.data, form.port.data, form.security.data = (
        provider.host,
        provider.port,
        provider.security,
    )
    form.oauth_authorize_url.data = provider.authorize_url
    form.oauth_token_url.data = provider.token_url
    form.oauth_revoke_url.data = provider.revoke_url
    form.oauth_scopes.data = provider.scopes


def _oauth_context(config: MailConfig | None, company: Company | None) -> dict:
    grant = config.grant if config is not None else None
    scope = {} if company is None else {"company_id": company.id}
    return {
        "grant": grant,
        "oauth_ready": oauth_connect.ready(config),
        "waiting": store.waiting(config) if grant is not None and grant.reauth_needed else 0,
        "redirect_uri": oauth_connect.redirect_uri(),
        "authorize_action": url_for("oauth.authorize", **scope),
        "disconnect_action": url_for("oauth.disconnect", **scope),
    }


def _render(form, *, company: Company | None, config: MailConfig | None, saved: bool):
    status = UNPROCESSABLE if _has_errors(form) else 200
    context = {
        "form": form,
        "company": company,
        "saved": saved,
        "saved_password": config is not None and config.has_password,
        "saved_secret": config is not None and config.has_client_secret,
        **_oauth_context(config, company),
        "usual_ports": dict(USUAL_PORTS),
        "history": audit.recent(company),
    }
    if not wants_partial():
        context.update(dkim.section_context(company))
    if company is None:
        context["action"] = url_for("mail_settings.global_settings")
        context["test_action"] = url_for("mail_settings.connection_test.test_global")
        return respond("mail/global.html", "mail/_form_response.html", status, **context)
    context["action"] = url_for("mail_settings.company", company_id=company.id)
    context["test_action"] = url_for(
        "mail_settings.connection_test.test_company", company_id=company.id
    )
    context["effective"] = effective = resolve(company)
    # Only an inheriting company's page says the global mailbox needs an authorization.
    glob = global_config() if effective.source("auth_method") == "global" else None
    context["global_reauth"] = bool(
        glob and glob.uses_oauth and glob.grant and glob.grant.reauth_needed
    )
    return respond("mail/company.html", "mail/_form_response.html", status, **context)


@bp.route("/settings/mail", methods=["GET", "POST"])
@superuser_required
def global_settings():
    config = ensure_global_config()
    if request.method == "GET":
        db.session.commit()  # keeps a row seeded from the environment
        form = GlobalMailForm(formdata=None, data=prefill(config, with_global_only=True))
        return _render(form, company=None, config=config, saved=False)
    form = GlobalMailForm()
    if request.form.get("_refresh"):
        _provider_defaults(form)
        return _render(form, company=None, config=config, saved=False)
    saved = _save(form, config, None)
    if saved and not is_htmx():
        flash(SAVED)
        return redirect(url_for("mail_settings.global_settings"))
    return _render(form, company=None, config=config, saved=saved)


def _company_form(company: Company) -> CompanyMailForm:
    """The Email tab's form: posted values, or prefilled from the company's or global values."""
    if request.method == "POST" and "host" in request.form:
        return CompanyMailForm()
    source = company.mail_config or global_config()
    data = prefill(source, with_global_only=False)
    if request.method == "POST":
        data["use_own"] = bool(request.form.get("use_own"))
    else:
        data["use_own"] = company.use_own_mail_settings
    return CompanyMailForm(formdata=None, data=data)


@bp.route("/companies/<int:company_id>/email", methods=["GET", "POST"])
@login_required
def company(company_id: int):
    company = visible_company(company_id)
    form = _company_form(company)
    saved = False
    _provider_defaults(form)
    if request.method == "POST" and not request.form.get("_refresh"):
        if form.use_own.data:
            saved = _save(form, company.mail_config, company)
        else:
            if company.use_own_mail_settings:
                company.use_own_mail_settings = False
                changes = {"use_own_mail_settings": {"old": True, "new": False}}
                audit.record("mail_settings.update", changes, current_user, company)
            db.session.commit()
            saved = True
        if saved and not is_htmx():
            flash(SAVED)
            return redirect(url_for("mail_settings.company", company_id=company.id))
    return _render(form, company=company, config=company.mail_config, saved=saved)


@bp.get("/settings/mail/password-input")
@login_required
def password_input():
    """The empty password input that replaces "a password is saved"."""
    return render_template("mail/_password.html", replacing=True, field_errors=[])


@bp.get("/settings/mail/client-secret-input")
@login_required
def client_secret_input():
    """The empty client secret input that replaces "a client secret is saved"."""
    return render_template("mail/_client_secret.html", replacing=True, field_errors=[])


def _caught(name: str) -> bytes:
    """The caught mail's bytes; 404 for a name the catcher did not write."""
    path = catcher.caught_file(current_app.instance_path, name)
    if path is None:
        abort(404)
    return path.read_bytes()


def _render_caught(**shown):
    instance = current_app.instance_path
    return render_template(
        "mail/caught.html",
        mails=catcher.recent(instance),
        listening=catcher.listening(instance),
        **shown,
    )


@bp.get("/settings/mail/caught")
@superuser_required
def caught():
    """What the demo's local mail catcher received."""
    return _render_caught()


@bp.get("/settings/mail/caught/<name>")
@superuser_required
def caught_mail(name: str):
    """One caught mail as its recipient reads it: headers, text, HTML, attachments."""
    raw = _caught(name)
    return _render_caught(shown_name=name, reading=mime.read(raw))


@bp.get("/settings/mail/caught/<name>/raw")
@superuser_required
def caught_raw(name: str):
    """One caught mail's source, as it arrived."""
    raw = _caught(name)
    return _render_caught(shown_name=name, source=raw.decode("utf-8", errors="replace"))


@bp.get("/settings/mail/caught/<name>/html")
@superuser_required
def caught_html(name: str):
    """A caught mail's HTML part, for the sandboxed frame of its page."""
    html = mime.html_body(mime.parse(_caught(name)))
    if html is None:
        abort(404)
    return mail_view.html_preview(html)


@bp.get("/settings/mail/caught/<name>/attachments/<int:number>")
@superuser_required
def caught_attachment(name: str, number: int):
    """A caught mail's attachment (counted from 1), downloaded as it was sent."""
    found = mime.attachments(mime.parse(_caught(name)))
    if not 1 <= number <= len(found):
        abort(404)
    return mail_view.download(found[number - 1])
