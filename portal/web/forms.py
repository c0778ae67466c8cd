"""Flask-WTF forms; every field is validated on the server."""

import ipaddress
import re
from urllib.parse import urlsplit

from email_validator import EmailNotValidError
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import FileStorage
from wtforms import (
    BooleanField,
    FileField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from portal.i18n import LANGUAGES
from portal.models import AUTH_PASSWORD, oauth_in_use
from portal.settings.resolution import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULTS,
    GROUP_OF,
    MAX_MAX_SESSIONS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    EffectiveSettings,
    clear_auth_problem,
    egress_policy,
    internal_domains,
)
from portal.text import CONTROL_CHARS, normalize_email, parse_domains
from portal.web.labels import AUTH_METHOD_NAMES, SECURITY_NAMES
from portal.wire.egress import EgressPolicy
from portal.wire.trust import MAX_BUNDLE_CHARS, MSG_NOT_PEM, MSG_TOO_LONG, read_bundle

HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_FOOTER_CHARS = 20_000
# The wire's CA bundle messages, as the field shows them (the wire itself speaks only English).
CA_BUNDLE_MESSAGES = {
    MSG_NOT_PEM: _l(
        "Not a PEM certificate: paste or upload one or more blocks from "
        "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
    ),
    MSG_TOO_LONG: _l("Use at most %(num)d characters.", num=MAX_BUNDLE_CHARS),
}
SECURITY_LABELS = [SelectChoice(value, label) for value, label in SECURITY_NAMES.items()]
AUTH_METHOD_LABELS = [SelectChoice(value, label) for value, label in AUTH_METHOD_NAMES.items()]


def single_line(form, field) -> None:
    """Reject CR, LF and NUL: they would split an SMTP command or a mail header."""
    if field.data and CONTROL_CHARS.search(str(field.data)):
        raise ValidationError(_("Line breaks and NUL characters are not allowed here."))


def no_nul(form, field) -> None:
    if field.data and "\x00" in field.data:
        raise ValidationError(_("NUL characters are not allowed."))


def max_length(limit: int):
    def check(form, field) -> None:
        if field.data and len(field.data) > limit:
            raise ValidationError(_("Use at most %(num)d characters.", num=limit))

    return check


def normalize_host(value: str) -> str:
    """Return the host in canonical form or raise ValueError."""
    host = value.strip().lower().removesuffix(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    labels = host.split(".")
    if not host or len(host) > 253 or not all(HOST_LABEL.match(label) for label in labels):
        raise ValueError(host)
    if labels[-1].isdigit():  # 1.2.3 or 0177.0.0.1-like spellings that are not real IPs
        raise ValueError(host)
    return host


class HostField(StringField):
    def post_validate(self, form, validation_stopped) -> None:
        if validation_stopped or self.errors or not self.data:
            return
        try:
            self.data = normalize_host(self.data)
        except ValueError:
            self.errors.append(_("Enter a host name (mail.example.com) or an IP address."))


def accepted_domains(form) -> tuple[str, ...]:
    """The internal mail domains a form's addresses may be in (the saved ones, or the form's)."""
    own = getattr(form, "accepted_domains", None)
    return own() if own is not None else internal_domains()


class EmailField(StringField):
    def post_validate(self, form, validation_stopped) -> None:
        if validation_stopped or self.errors or not self.data:
            return
        try:
            self.data = normalize_email(self.data, accepted_domains(form))
        except EmailNotValidError as exc:
            # email-validator explains in English: the sentence around its reason is translated.
            self.errors.append(_("Enter a valid email address: %(reason)s", reason=exc))


class HttpsUrlField(StringField):
    """An endpoint URL: https only, no user info or fragment."""

    def post_validate(self, form, validation_stopped) -> None:
        self.data = (self.data or "").strip()
        if validation_stopped or self.errors or not self.data:
            return
        try:
            parts = urlsplit(self.data)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts = None
        if parts is None or parts.scheme != "https" or not parts.hostname:
            self.errors.append(_("Enter an https:// URL."))
        elif parts.username or parts.password or parts.fragment:
            self.errors.append(_("Enter the URL without user name, password or #fragment."))


class WholeNumberField(StringField):
    """An integer field whose only message is the allowed range."""

    def __init__(self, label, minimum: int, maximum: int, **kwargs):
        super().__init__(label, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def process_formdata(self, valuelist) -> None:
        self.raw = valuelist[0].strip() if valuelist else ""
        self.data = int(self.raw) if re.fullmatch(r"\d{1,6}", self.raw) else self.raw

    def pre_validate(self, form) -> None:
        if not isinstance(self.data, int) or not self.minimum <= self.data <= self.maximum:
            raise ValidationError(
                _(
                    "Enter a whole number from %(minimum)d to %(maximum)d.",
                    minimum=self.minimum,
                    maximum=self.maximum,
                )
            )

    def _value(self) -> str:
        return "" if self.data is None else str(self.data)


def required(message):
    """A field that must not be left empty; `message` may be lazy (a form's class attribute)."""

    def check(form, field) -> None:
        if not (field.data or "").strip():
            raise ValidationError(message)

    return check


class MailForm(FlaskForm):
    """The fields both the global page and a company's Email tab have."""

    host = HostField(
        _l("Host"), [required(_l("Enter the SMTP host.")), single_line, max_length(253)]
    )
    port = WholeNumberField(_l("Port"), 1, 65535, default=25)
    security = SelectField(_l("Security"), choices=SECURITY_LABELS, default="none")
    auth_enabled = BooleanField(_l("Authentication"))
    username = StringField(_l("User"), [single_line, max_length(320)])
    password = PasswordField(_l("Password"), [single_line, max_length(1024)])
    remove_password = BooleanField(_l("Remove the saved password"))
    auth_method = SelectField(_l("Method"), choices=AUTH_METHOD_LABELS, default=AUTH_PASSWORD)
    oauth_client_id = StringField(_l("Client ID"), [single_line, max_length(512)])
    oauth_client_secret = PasswordField(_l("Client secret"), [single_line, max_length(1024)])
    oauth_authorize_url = HttpsUrlField(
        _l("Authorization endpoint"), [single_line, max_length(2000)]
    )
    oauth_token_url = HttpsUrlField(_l("Token endpoint"), [single_line, max_length(2000)])
    oauth_revoke_url = HttpsUrlField(_l("Revocation endpoint"), [single_line, max_length(2000)])
    oauth_scopes = StringField(_l("Scopes"), [single_line, max_length(1000)])
    sender_address = EmailField(_l("Sender address"), [single_line, max_length(320)])
    sender_name = StringField(_l("Sender name"), [single_line, max_length(120)])
    group_sends = BooleanField(_l("Group sends and dispatch every 2 s"))
    timeout_seconds = WholeNumberField(
        _l("SMTP timeout (seconds)"),
        MIN_TIMEOUT_SECONDS,
        MAX_TIMEOUT_SECONDS,
        default=DEFAULT_TIMEOUT_SECONDS,
    )
    max_sessions = WholeNumberField(
        _l("Parallel connections"), 1, MAX_MAX_SESSIONS, default=DEFAULT_MAX_SESSIONS
    )
    reply_to = EmailField(_l("Reply-To address"), [single_line, max_length(320)])
    footer_html = TextAreaField(_l("HTML footer"), [no_nul, max_length(MAX_FOOTER_CHARS)])
    ca_bundle_pem = TextAreaField(_l("Trusted CA certificates"), [no_nul])
    ca_bundle_file = FileField(_l("Or upload a PEM file"))
    remove_ca_bundle = BooleanField(_l("Remove the trusted certificates"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for f in self:  # this request's language, as plain text: a label is joined into messages
            f.label.text = str(f.label.text)

    def typed_ca_bundle(self) -> str | None:
        """The PEM pasted or uploaded (the file wins), None if neither; ValueError if unread."""
        if not hasattr(self, "_typed_ca_bundle"):
            upload = self.ca_bundle_file.data
            if isinstance(upload, FileStorage) and upload.filename:
                raw = upload.stream.read(MAX_BUNDLE_CHARS + 1)
                if len(raw) > MAX_BUNDLE_CHARS:
                    raise ValueError(MSG_TOO_LONG)
                try:
                    text = raw.decode("ascii")
                except UnicodeDecodeError:
                    raise ValueError(MSG_NOT_PEM) from None
            else:
                text = self.ca_bundle_pem.data or ""
            self._typed_ca_bundle = text.strip() or None
        return self._typed_ca_bundle

    def validate_ca_bundle_pem(self, field) -> None:
        try:
            typed = self.typed_ca_bundle()
            if typed:
                read_bundle(typed)
        except ValueError as exc:
            raise ValidationError(CA_BUNDLE_MESSAGES.get(str(exc), str(exc))) from exc

    def uses_oauth(self) -> bool:
        return oauth_in_use(self.auth_enabled.data, self.auth_method.data)

    def validate_username(self, field) -> None:
        if self.uses_oauth():
            if not (field.data or "").strip():
                raise ValidationError(_("Enter the mailbox address mail is sent from."))
            try:
                field.data = normalize_email(field.data, self.accepted_domains())
            except EmailNotValidError as exc:
                raise ValidationError(
                    _("Enter the mailbox's email address: %(reason)s", reason=exc)
                ) from exc
        elif self.auth_enabled.data and not (field.data or "").strip():
            raise ValidationError(_("Enter the user name for authentication."))

    def validate_oauth_client_id(self, field) -> None:
        self._needed_for_oauth(field, _("Enter the client ID the provider gave your app."))

    def validate_oauth_authorize_url(self, field) -> None:
        self._needed_for_oauth(field, _("Enter the provider's authorization endpoint."))

    def validate_oauth_token_url(self, field) -> None:
        self._needed_for_oauth(field, _("Enter the provider's token endpoint."))

    def validate_oauth_scopes(self, field) -> None:
        self._needed_for_oauth(field, _("Enter the scopes that allow sending mail."))

    def validate_security(self, field) -> None:
        if not self.in_force():
            return
        host = (self.host.data or "").strip()
        problem = clear_auth_problem(
            host, field.data, self.auth_enabled.data, self.auth_method.data, self.egress_policy()
        )
        if problem:
            raise ValidationError(_(problem))  # resolution's message, marked there

    def in_force(self) -> bool:
        """Whether these settings send mail once saved (a company's only with its switch on)."""
        return True

    def egress_policy(self) -> EgressPolicy:
        return egress_policy()

    def accepted_domains(self) -> tuple[str, ...]:
        return internal_domains()

    def _needed_for_oauth(self, field, message: str) -> None:
        if self.uses_oauth() and not (field.data or "").strip():
            raise ValidationError(message)

    def validate_sender_address(self, field) -> None:
        if self.sender_required() and not (field.data or "").strip():
            raise ValidationError(_("Enter the sender address."))

    def sender_required(self) -> bool:
        return True


# The inputs of the write-only secrets belong to the authentication group too.
FORM_GROUP_OF = {
    **GROUP_OF,
    "password": "auth",
    "remove_password": "auth",
    "oauth_client_secret": "auth",
    "ca_bundle_pem": "server",
    "ca_bundle_file": "server",
    "remove_ca_bundle": "server",
}


class CompanyMailForm(MailForm):
    """A company's Email tab: only the groups it overrides are checked (and saved)."""

    def __init__(
        self,
        *args,
        groups: frozenset[str] = frozenset(),
        in_force: EffectiveSettings | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.groups = groups
        self.effective = in_force

    def in_force(self) -> bool:
        return "server" in self.groups

    def validate(self, extra_validators=None) -> bool:
        super().validate(extra_validators)
        for f in self:
            group = FORM_GROUP_OF.get(f.name)
            if group is not None and group not in self.groups:
                f.errors = []  # a group the company follows: its values are not the company's
        self._check_clear_auth()
        return not any(f.errors for f in self)

    def _check_clear_auth(self) -> None:
        """The company's own password over the global server is refused in clear, as anywhere."""
        if "auth" not in self.groups or "server" in self.groups or self.effective is None:
            return
        problem = clear_auth_problem(
            self.effective.host,
            self.effective.security,
            self.auth_enabled.data,
            self.auth_method.data,
            self.egress_policy(),
        )
        if problem:
            self.auth_enabled.errors.append(_(problem))


class GlobalMailForm(MailForm):
    default_sender_enabled = BooleanField(_l("Default sender"))
    all_use_default_sender = BooleanField(_l("All notifications use the default sender"))
    egress_allowlist = TextAreaField(_l("Allowed internal relays"), [no_nul, max_length(2000)])
    egress_extra_ports = StringField(_l("Additional SMTP ports"), [single_line, max_length(200)])
    retention_days = WholeNumberField(
        _l("Keep sent mail (days)"), 0, 3650, default=DEFAULTS["retention_days"]
    )
    internal_domains = TextAreaField(_l("Internal mail domains"), [no_nul, max_length(2000)])

    def validate_internal_domains(self, field) -> None:
        try:
            field.data = "\n".join(parse_domains(field.data)) or None
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def accepted_domains(self) -> tuple[str, ...]:
        # The domains typed here are the ones in force once saved: listing a domain and using
        # it as the sender is one save.
        try:
            return parse_domains(self.internal_domains.data)
        except ValueError:
            return internal_domains()

    def validate_egress_allowlist(self, field) -> None:
        try:
            EgressPolicy.parse(field.data, None)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def egress_policy(self) -> EgressPolicy:
        # The relays typed here count too (listing a relay and using it is one save), and the
        # saved ones stay: a connection test goes through the saved policy whatever is typed.
        saved = super().egress_policy()
        try:
            typed = EgressPolicy.parse(self.egress_allowlist.data, self.egress_extra_ports.data)
        except ValueError:
            return saved
        return EgressPolicy(
            saved.allowed_hosts | typed.allowed_hosts,
            saved.allowed_networks + typed.allowed_networks,
            saved.extra_ports | typed.extra_ports,
        )

    def validate_egress_extra_ports(self, field) -> None:
        try:
            EgressPolicy.parse(None, field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def sender_required(self) -> bool:
        return bool(self.default_sender_enabled.data)


class LoginForm(FlaskForm):
    email = StringField(_l("Email"), [required(_l("Enter your email.")), single_line])
    password = PasswordField(_l("Password"), [required(_l("Enter your password."))])


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"), [required(_l("Enter a password.")), max_length(1024)]
    )
    confirm = PasswordField(_l("Repeat the password"))

    def validate_password(self, field) -> None:
        if len(field.data or "") < 12:
            raise ValidationError(_l("Use at least 12 characters."))

    def validate_confirm(self, field) -> None:
        if field.data != self.password.data:
            raise ValidationError(_l("The two passwords differ."))


class CompanyForm(FlaskForm):
    name = StringField(
        _l("Company name"),
        [required(_l("Enter the company name.")), single_line, max_length(120)],
    )


class CompanyEditForm(CompanyForm):
    """A company's own properties: its name and the language its admins see by default."""

    # The language names stay in their own language; "" stores None (each admin's browser).
    default_language = SelectField(
        _l("Default language"),
        choices=[
            SelectChoice("", _l("None (each admin's browser)")),
            *(SelectChoice(code, name) for code, name in LANGUAGES.items()),
        ],
        default="",
        validate_choice=False,
    )

    def validate_default_language(self, field) -> None:
        if (field.data or "") and field.data not in LANGUAGES:
            raise ValidationError(_l("Choose a language from the list."))


class InviteForm(FlaskForm):
    email = EmailField(
        _l("Email"), [required(_l("Enter the admin's email.")), single_line, max_length(320)]
    )
    name = StringField(_l("Name"), [single_line, max_length(120)])
