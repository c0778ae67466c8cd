"""The "DKIM signing" section of the Email tab and of the global Mail page."""

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import pgettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import ValidationError

from portal import audit, tenancy
from portal.exceptions import DkimKeyError
from portal.extensions import db
from portal.keys import dkim
from portal.models import Company, DkimKey
from portal.settings.resolution import resolve
from portal.web.access import visible_company
from portal.web.forms import max_length, required, single_line
from portal.web.htmx import UNPROCESSABLE, is_htmx, respond
from portal.wire import dnscheck
from portal.wire.sentence import Sentence

bp = Blueprint("dkim", __name__)
RESOLVER = "portal.dns_resolver"  # an app may set a DnsResolver here; None: the system's


def _check(problem):
    def check(form, field) -> None:
        message = problem((field.data or "").strip().lower().rstrip("."))
        if message:
            raise ValidationError(message)

    return check


class DkimForm(FlaskForm):
    dkim_domain = StringField(
        _l("Sender domain"),
        [
            required(_l("Enter the domain mail is sent from.")),
            single_line,
            max_length(253),
            _check(dkim.domain_problem),
        ],
    )
    dkim_selector = StringField(
        _l("Selector"),
        [
            required(_l("Enter a selector.")),
            single_line,
            max_length(63),
            _check(dkim.selector_problem),
        ],
    )


def said(sentence: str) -> str:
    """A DNS check's sentence in the page's language, its words (domains, records) kept.

    A word that is a sentence itself (why an SPF record cannot be evaluated) is translated too;
    a plain string (a resolver's error) is shown as it came.
    """
    if not isinstance(sentence, Sentence):
        return sentence
    return _(sentence.template, **{name: said(word) for name, word in sentence.words.items()})


def check_label(status: str | None) -> str:
    """A DNS check's verdict ("ok", "missing", ...) named in the page's language."""
    labels = {
        "ok": pgettext("DNS check", "ok"),
        "missing": pgettext("DNS check", "missing"),
        "mismatch": pgettext("DNS check", "mismatch"),
        "weak": pgettext("DNS check", "weak"),
        "error": pgettext("DNS check", "error"),
    }
    return labels.get(status or "", status or "")


def _scope(company_id: int | None) -> Company | None:
    """The company (404 when it is not the user's), or None for the global page (superuser)."""
    if company_id is None:
        if not current_user.is_superuser:
            abort(403)
        return None
    return visible_company(company_id)


def _key(company: Company | None, key_id: int) -> DkimKey:
    key = tenancy.find(DkimKey, key_id, company.id if company else tenancy.GLOBAL)
    if key is None:
        abort(404)
    return key


def _sender_domain(company: Company | None) -> str:
    sender = resolve(company).sender_address or ""
    return sender.rpartition("@")[2].lower()


def _url(endpoint: str, company: Company | None, **values) -> str:
    if company is not None:
        values["company_id"] = company.id
    return url_for(f"dkim.{endpoint}", **values)


def section_context(company: Company | None, form: DkimForm | None = None, **extra) -> dict:
    """What `mail/_dkim.html` needs; the pages include it with this."""
    if form is None:
        form = DkimForm(
            formdata=None,
            data={"dkim_domain": _sender_domain(company), "dkim_selector": dkim.default_selector()},
        )
    return {
        "dkim_company": company,
        "dkim_form": form,
        "dkim_keys": dkim.scope_keys(company),
        "dkim_record_name": dkim.record_name,
        "dkim_record_value": dkim.record_value,
        "dkim_can_activate": dkim.can_activate,
        "dkim_said": said,
        "dkim_check_label": check_label,
        "dkim_url": lambda endpoint, **values: _url(endpoint, company, **values),
        "dkim_findings": extra.get("findings", {}),
        "dkim_errors": extra.get("errors", {}),
        "dkim_new": extra.get("new"),
    }


def _answer(company: Company | None, status: int = 200, **extra):
    if not is_htmx() and status == 200:
        if company is None:
            return redirect(url_for("mail_settings.global_settings"), 303)
        return redirect(url_for("mail_settings.company", company_id=company.id), 303)
    return respond(
        "mail/dkim.html",
        "mail/_dkim_response.html",
        status,
        company=company,
        history=audit.recent(company),
        **section_context(company, extra.pop("form", None), **extra),
    )


def _rules(rule: str, endpoint: str, methods=("POST",)):
    """The same view under the global page and under each company's Email tab."""

    def register(view):
        bp.add_url_rule(f"/settings/mail/dkim{rule}", endpoint, view, methods=methods)
        bp.add_url_rule(
            f"/companies/<int:company_id>/email/dkim{rule}", endpoint, view, methods=methods
        )
        return view

    return register


@_rules("", "generate", methods=("GET", "POST"))
@login_required
def generate(company_id: int | None = None):
    """GET: the section; POST: a new key for the domain, its record shown to publish."""
    company = _scope(company_id)
    if request.method == "GET":
        return _answer(company)
    form = DkimForm()
    if not form.validate():
        return _answer(company, UNPROCESSABLE, form=form)
    try:
        key = dkim.generate(company, form.dkim_domain.data, form.dkim_selector.data, current_user)
    except DkimKeyError as exc:
        getattr(form, f"dkim_{exc.field}").errors.append(exc.message)
        db.session.rollback()
        return _answer(company, UNPROCESSABLE, form=form)
    db.session.commit()
    return _answer(company, new=key.id)


@_rules("/<int:key_id>/check", "check")
@login_required
def check(key_id: int, company_id: int | None = None):
    """Look the key's record, SPF and DMARC up; the DKIM verdict is kept on the key."""
    company = _scope(company_id)
    key = _key(company, key_id)
    settings = resolve(company)
    findings = dnscheck.check_domain(
        key.domain,
        selector=key.selector,
        public_key=key.public_key,
        relay_host=settings.host,
        from_domain=key.domain,
        resolver=current_app.extensions.get(RESOLVER),
    )
    dkim.record_check(key, findings, current_user)
    db.session.commit()
    return _answer(company, findings={key.id: findings})


@_rules("/<int:key_id>/activate", "activate")
@login_required
def activate(key_id: int, company_id: int | None = None):
    """Sign the domain's mail with this key; "force" activates without a matching record."""
    company = _scope(company_id)
    key = _key(company, key_id)
    try:
        dkim.activate(key, current_user, force=request.form.get("force") == "1")
    except DkimKeyError as exc:
        return _answer(company, UNPROCESSABLE, errors={key.id: exc.message})
    db.session.commit()
    return _answer(company)


@_rules("/<int:key_id>/remove", "remove")
@login_required
def remove(key_id: int, company_id: int | None = None):
    company = _scope(company_id)
    dkim.remove(_key(company, key_id), current_user)
    db.session.commit()
    return _answer(company)
