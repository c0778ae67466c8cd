"""Building the mail itself: sender rules, Reply-To, footer, Message-ID, attachments."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape

from email_validator import EmailNotValidError

from portal.config import MAX_MESSAGE_BYTES
from portal.exceptions import MailValidationError
from portal.models import Company, User, utcnow
from portal.outbox.headers import POLICY
from portal.settings.resolution import EffectiveSettings
from portal.text import CONTROL_CHARS, normalize_email, to_text

MAX_SUBJECT_CHARS = 998
MAX_RECIPIENTS = 100
BLANK_LINE = re.compile(rb"\r?\n\r?\n")  # ends the header block


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Composed:
    """A rendered mail and what delivery needs besides it."""

    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    subject: str
    raw: bytes


def _addresses(
    field_name: str, values: Sequence[str], errors: dict[str, str], internal: Sequence[str]
) -> list[str]:
    found = []
    for value in values:
        try:
            found.append(normalize_email(value, internal))
        except EmailNotValidError as exc:
            errors[field_name] = f"Not a valid email address: {value!r}. {exc}"
        except Exception:  # noqa: BLE001 - not a string: no reason to give
            errors[field_name] = f"Not a valid email address: {value!r}"
    return found


def _sender(settings: EffectiveSettings) -> tuple[str, str]:
    """The configured sender (address, name); the SMTP user stands in when it is an address."""
    address = settings.sender_address
    if not address and settings.username and "@" in settings.username:
        address = settings.username
    if not address:
        raise MailValidationError({"from": "No sender address is configured for this company."})
    return address, settings.sender_name or ""


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _from_headers(
    settings: EffectiveSettings, user: User | None, company: Company | None
) -> tuple[Address, Address | None, Address | None]:
    """(From, Sender, Reply-To) by the sender rules; None where the header is not set."""
    address, name = _sender(settings)
    configured = Address(display_name=name, addr_spec=address)
    if user is None or settings.all_use_default_sender:
        return configured, None, None
    user_address = Address(display_name=user.name or "", addr_spec=user.email)
    if _domain(user.email) == _domain(address):
        return user_address, configured, None
    # Servers refuse (and DMARC fails) mail "from" a foreign domain: send as ourselves, on behalf.
    via = company.name if company is not None else (name or _domain(address))
    label = f"{user.name or user.email} (via {via})"
    return Address(display_name=label, addr_spec=address), None, user_address


def _with_footer_html(html: str, footer: str | None) -> str:
    if not footer:
        return html
    block = f'<div class="footer">{footer}</div>'
    index = html.lower().rfind("</body>")
    return html[:index] + block + html[index:] if index >= 0 else html + block


def compose(
    settings: EffectiveSettings,
    *,
    company: Company | None,
    user: User | None,
    to: Sequence[str],
    subject: str,
    text: str | None = None,
    html: str | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Composed:
    """Validate the parts of a mail and render it; MailValidationError names each bad field."""
    errors: dict[str, str] = {}
    internal = settings.internal_domain_names
    to_list = _addresses("to", to, errors, internal)
    cc_list = _addresses("cc", cc, errors, internal)
    bcc_list = _addresses("bcc", bcc, errors, internal)
    reply_list = _addresses("reply_to", [reply_to] if reply_to else [], errors, internal)
    recipients = tuple(dict.fromkeys(to_list + cc_list + bcc_list))
    if not recipients and "to" not in errors:
        errors["to"] = "Give at least one recipient."
    if len(recipients) > MAX_RECIPIENTS:
        errors["to"] = f"At most {MAX_RECIPIENTS} recipients per mail."
    if CONTROL_CHARS.search(subject or ""):
        errors["subject"] = "Line breaks and NUL characters are not allowed in the subject."
    elif len(subject or "") > MAX_SUBJECT_CHARS:
        errors["subject"] = f"Use at most {MAX_SUBJECT_CHARS} characters."
    if not text and not html:
        errors["text"] = "Give a text or an HTML body."
    for attachment in attachments:
        if CONTROL_CHARS.search(attachment.filename) or "/" not in attachment.content_type:
            errors["attachments"] = f"Bad attachment name or type: {attachment.filename!r}"
    if errors:
        raise MailValidationError(errors)

    sender, sender_header, rule_reply_to = _from_headers(settings, user, company)
    message = EmailMessage(policy=POLICY)
    message["From"] = str(sender)  # as a string its parsed header is kept: same bytes
    if sender_header is not None:
        message["Sender"] = str(sender_header)
    message["To"] = ", ".join(to_list) if to_list else "undisclosed-recipients:;"
    if cc_list:
        message["Cc"] = ", ".join(cc_list)
    chosen_reply_to = reply_list[0] if reply_list else rule_reply_to or settings.reply_to
    if chosen_reply_to:
        message["Reply-To"] = str(chosen_reply_to)
    message["Subject"] = subject or ""
    message["Date"] = format_datetime(utcnow())
    message_id = make_msgid(domain=_domain(sender.addr_spec))
    message["Message-ID"] = message_id

    body_text = text if text is not None else to_text(html or "")
    if settings.footer_text:
        body_text = f"{body_text.rstrip()}\n\n-- \n{settings.footer_text}\n"
    message.set_content(body_text)
    if html is not None or settings.footer_html:
        page = html if html is not None else f"<pre>{escape(text or '')}</pre>"
        message.add_alternative(_with_footer_html(page, settings.footer_html), subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    raw = message.as_bytes()
    if len(raw) > max_bytes:
        raise MailValidationError({"size": f"The mail is larger than {max_bytes} bytes."})
    return Composed(message_id, sender.addr_spec, recipients, subject or "", raw)


def headers_only(raw: bytes) -> bytes:
    """A rendered mail's header block without its body: what the log keeps of a secret mail."""
    return BLANK_LINE.split(raw, maxsplit=1)[0] + b"\r\n\r\n"
