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
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import audit, catcher, mime
from portal.extensions import db
from portal.keys import oauth
from portal.models import Company, MailConfig
from portal.outbox import store
from portal.settings.resolution import USUAL_PORTS, global_config, merge
from portal.settings.saving import (
    apply,
    ca_choice,
    company_config,
    ensure_global_config,
    form_values,
    password_problem,
    prefill,
    secret_problem,
)
from portal.web import connection_test, dkim, mail_view, oauth_connect
from portal.web.access import superuser_required, visible_company
from portal.web.company_form import company_form, unshown
from portal.web.forms import GlobalMailForm
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond, wants_partial
from portal.wire import trust

bp = Blueprint("mail_settings", __name__)
bp.register_blueprint(connection_test.bp)  # the Test connection button of both pages


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
        form.password.errors.append(_(problem))  # saving's messages, marked there
    new_secret = form.oauth_client_secret.data or ""
    secret = secret_problem(config, values, new_secret)
    if secret:
        form.oauth_client_secret.errors.append(_(secret))
    if problem or secret:
        return False
    if company is not None and config is None and not form.groups:
        return True  # following the global settings in every group, as it already does
    if getattr(form, "groups", None) is None or "server" in form.groups:  # the server's trust
        values["ca_bundle"] = ca_choice(config, form.typed_ca_bundle(), form.remove_ca_bundle.data)
    changes = apply(config or company_config(company), values, new_password, new_secret)
    if "ca_bundle" in changes:  # the audit names the certificates, not their PEM text
        changes["ca_bundle"] = {k: trust_summary(v) for k, v in changes["ca_bundle"].items()}
    if company is not None and company.use_own_mail_settings != bool(form.groups):
        # The switch the versioned cache and the lanes read: on while any group is overridden.
        old, company.use_own_mail_settings = company.use_own_mail_settings, bool(form.groups)
        changes["use_own_mail_settings"] = {"old": old, "new": company.use_own_mail_settings}
    audit.record("mail_settings.update", changes, current_user, company)
    db.session.commit()
    if "footer_html" in values:  # the page shows what is stored: sanitized
        form.footer_html.data = values["footer_html"]
    form.ca_bundle_pem.data, form.remove_ca_bundle.data = "", False  # listed as stored instead
    return True


def trust_summary(pem: str | None) -> str | None:
    """'Acme Root CA (until 2030-01-31)' per certificate: the CA bundle as the audit shows it."""
    if not pem:
        return None
    shown = [f"{c.subject} (until {c.expires:%Y-%m-%d})" for c in trust.describe(pem)]
    return "; ".join(shown)


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
        "ca_certificates": trust.describe(config.ca_bundle if config is not None else None),
        **_oauth_context(config, company),
        "usual_ports": dict(USUAL_PORTS),
        "history": audit.recent(company),
    }
    if not wants_partial():
        context.update(dkim.section_context(company))
    if company is None:
        context["action"] = url_for("mail_settings.global_settings")
        context["test_action"] = url_for("mail_settings.connection_test.test_global")
        context["test_mail_action"] = url_for("test_mail.send_global")
        return respond("mail/global.html", "mail/_form_response.html", status, **context)
    context["action"] = url_for("mail_settings.company", company_id=company.id)
    context["test_action"] = url_for(
        "mail_settings.connection_test.test_company", company_id=company.id
    )
    context["test_mail_action"] = url_for("test_mail.send_company", company_id=company.id)
    context["groups"] = form.groups
    # What the groups the company follows bring: the global values, as resolve() merges them.
    context["inherited"] = merge(company.id, global_config(), None)
    # Only a page following the global authentication says the global mailbox needs one.
    glob = global_config() if "auth" not in form.groups else None
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
        flash(_("Mail settings saved."))
        return redirect(url_for("mail_settings.global_settings"))
    return _render(form, company=None, config=config, saved=saved)


@bp.route("/companies/<int:company_id>/email", methods=["GET", "POST"])
@login_required
def company(company_id: int):
    company = visible_company(company_id)
    form = company_form(company)
    saved = False
    _provider_defaults(form)
    # An "Override" chosen without scripts shows the group's inputs first: nothing to save yet.
    if request.method == "POST" and not request.form.get("_refresh") and not unshown(form):
        saved = _save(form, company.mail_config, company)
        if saved and not is_htmx():
            flash(_("Mail settings saved."))
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
