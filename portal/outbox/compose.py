"""Building the mail itself: sender rules, Reply-To, footer, Message-ID, attachments."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from html import escape

from email_validator import EmailNotValidError

from portal.config import MAX_MESSAGE_BYTES
from portal.exceptions import MailValidationError
from portal.models import Company, User, utcnow
from portal.outbox.headers import POLICY
from portal.settings.resolution import EffectiveSettings
from portal.text import CONTROL_CHARS, normalize_email, to_text
from portal.wire.texts import N_

MAX_SUBJECT_CHARS = 998
# In English as the API answers them; a screen translates them when it shows them (N_).
MSG_NO_SENDER = N_("No sender address is configured for this company.")
MSG_BAD_ADDRESS_WHY = N_("Not a valid email address: %(address)s. %(reason)s")
MSG_BAD_ADDRESS = N_("Not a valid email address: %(address)s")
MSG_NO_RECIPIENT = N_("Give at least one recipient.")
MSG_TOO_MANY_RECIPIENTS = N_("At most %(count)d recipients per mail.")
MSG_SUBJECT_CHARS = N_("Line breaks and NUL characters are not allowed in the subject.")
MSG_SUBJECT_LENGTH = N_("Use at most %(count)d characters.")
MSG_NO_BODY = N_("Give a text or an HTML body.")
MSG_BAD_ATTACHMENT = N_("Bad attachment name or type: %(name)s")
MSG_TOO_LARGE = N_("The mail is larger than %(count)d bytes.")
MAX_RECIPIENTS = 100
BLANK_LINE = re.compile(rb"\r?\n\r?\n")  # ends the header block
# A header value the email package writes back as given: printable ASCII words with single
# spaces, no encoded-word opener. Wider values go through the package, which folds them.
PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")
MAX_LINE = POLICY.max_line_length  # 78: past it a header is folded and a body line encoded
PLAIN_MIME_HEADERS = (
    'Content-Type: text/plain; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: 7bit\r\n"
    "MIME-Version: 1.0\r\n"
)


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
            errors[field_name] = MSG_BAD_ADDRESS_WHY % {"address": repr(value), "reason": exc}
        except Exception:  # noqa: BLE001 - not a string: no reason to give
            errors[field_name] = MSG_BAD_ADDRESS % {"address": repr(value)}
    return found


def _sender(settings: EffectiveSettings) -> tuple[str, str]:
    """The configured sender (address, name); the SMTP user stands in when it is an address."""
    address = settings.sender_address
    if not address and settings.username and "@" in settings.username:
        address = settings.username
    if not address:
        raise MailValidationError({"from": MSG_NO_SENDER})
    return address, settings.sender_name or ""


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


@lru_cache(maxsize=1024)
def _address(name: str, addr_spec: str) -> Address:
    """An address header value; immutable, and parsed once per sender (most mail has few)."""
    return Address(display_name=name, addr_spec=addr_spec)


def _from_headers(
    settings: EffectiveSettings, user: User | None, company: Company | None
) -> tuple[Address, Address | None, Address | None]:
    """(From, Sender, Reply-To) by the sender rules; None where the header is not set."""
    address, name = _sender(settings)
    configured = _address(name, address)
    if user is None or settings.all_use_default_sender:
        return configured, None, None
    user_address = _address(user.name or "", user.email)
    if _domain(user.email) == _domain(address):
        return user_address, configured, None
    # Servers refuse (and DMARC fails) mail "from" a foreign domain: send as ourselves, on behalf.
    via = company.name if company is not None else (name or _domain(address))
    label = f"{user.name or user.email} (via {via})"
    return _address(label, address), None, user_address


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
        errors["to"] = MSG_NO_RECIPIENT
    if len(recipients) > MAX_RECIPIENTS:
        errors["to"] = MSG_TOO_MANY_RECIPIENTS % {"count": MAX_RECIPIENTS}
    if CONTROL_CHARS.search(subject or ""):
        errors["subject"] = MSG_SUBJECT_CHARS
    elif len(subject or "") > MAX_SUBJECT_CHARS:
        errors["subject"] = MSG_SUBJECT_LENGTH % {"count": MAX_SUBJECT_CHARS}
    if not text and not html:
        errors["text"] = MSG_NO_BODY
    for attachment in attachments:
        if CONTROL_CHARS.search(attachment.filename) or "/" not in attachment.content_type:
            errors["attachments"] = MSG_BAD_ATTACHMENT % {"name": repr(attachment.filename)}
    if errors:
        raise MailValidationError(errors)

    sender, sender_header, rule_reply_to = _from_headers(settings, user, company)
    chosen_reply_to = reply_list[0] if reply_list else rule_reply_to or settings.reply_to
    headers = [("From", str(sender))]
    if sender_header is not None:
        headers.append(("Sender", str(sender_header)))
    headers.append(("To", ", ".join(to_list) if to_list else "undisclosed-recipients:;"))
    if cc_list:
        headers.append(("Cc", ", ".join(cc_list)))
    if chosen_reply_to:
        headers.append(("Reply-To", str(chosen_reply_to)))
    headers.append(("Subject", subject or ""))
    headers.append(("Date", format_datetime(utcnow())))
    message_id = make_msgid(domain=_domain(sender.addr_spec))
    headers.append(("Message-ID", message_id))

    body_text = text if text is not None else to_text(html or "")
    if settings.footer_text:
        body_text = f"{body_text.rstrip()}\n\n-- \n{settings.footer_text}\n"
    plain = html is None and not settings.footer_html and not attachments
    raw = (plain and _plain_bytes(headers, body_text)) or _mime_bytes(
        headers, body_text, html, settings.footer_html, text, attachments
    )
    if len(raw) > max_bytes:
        raise MailValidationError({"size": MSG_TOO_LARGE % {"count": max_bytes}})
    return Composed(message_id, sender.addr_spec, recipients, subject or "", raw)


def _plain_bytes(headers: list[tuple[str, str]], body_text: str) -> bytes | None:
    """The bytes the email package writes for a short ASCII text mail, without its cost.

    Most mail is one such part. For it the package's output is fixed: each header as given,
    then its three MIME headers and the lines, 7bit. None when a value or line needs folding,
    quoting or encoding: the package does that.
    """
    lines = body_text.encode("utf-8").splitlines()
    if not body_text.isascii() or not lines or max(map(len, lines)) > MAX_LINE:
        return None
    block = []
    for name, value in headers:
        if "=?" in value or len(name) + 2 + len(value) > MAX_LINE:
            return None
        if not PLAIN_VALUE.fullmatch(value):
            return None
        block.append(f"{name}: {value}\r\n")
    block.append(PLAIN_MIME_HEADERS)
    return "".join(block).encode("ascii") + b"\r\n" + b"\r\n".join(lines) + b"\r\n"


def _mime_bytes(
    headers: list[tuple[str, str]],
    body_text: str,
    html: str | None,
    footer_html: str | None,
    text: str | None,
    attachments: Sequence[Attachment],
) -> bytes:
    """The mail rendered by the email package: any parts, folding and encoding."""
    message = EmailMessage(policy=POLICY)
    for name, value in headers:
        message[name] = value  # a string's parsed header is kept: same bytes
    message.set_content(body_text)
    if html is not None or footer_html:
        page = html if html is not None else f"<pre>{escape(text or '')}</pre>"
        message.add_alternative(_with_footer_html(page, footer_html), subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message.as_bytes()


def headers_only(raw: bytes) -> bytes:
    """A rendered mail's header block without its body: what the log keeps of a secret mail."""
    return BLANK_LINE.split(raw, maxsplit=1)[0] + b"\r\n\r\n"
