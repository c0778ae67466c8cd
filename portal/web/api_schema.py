"""The API's bodies as pydantic models: the same classes validate requests and make the schemas."""

import base64
import re
from typing import Annotated, Literal, TypeVar

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from portal import outbox
from portal.outbox.compose import MAX_RECIPIENTS, MAX_SUBJECT_CHARS
from portal.text import normalize_email

MAX_NAME_CHARS = 255  # a file name, a MIME type
MAX_DATABASE_ID = 2**63 - 1  # BIGINT: a larger id is no mail, not a database error
RECIPIENT_FIELDS = ("to", "cc", "bcc")
BODY_FIELDS = ("text", "html")

# Patterns are in the syntax pydantic (Rust regex), JSON Schema (ECMA) and Python share.
# What str.splitlines() splits on: in a header, any of them is refused as a line break.
LINE_BREAKS = r"\n\x0b\x0c\r\x1c-\x1e\x85\u2028\u2029"
NO_LINE_BREAKS = rf"^[^\x00{LINE_BREAKS}]*$"
BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # they make "cod.exe" look like "exe.doc"
CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_IN_NAME = rf"[^{CONTROLS}{BIDI}/\\]"
# Any path whose last part holds something besides dots and spaces; only that part is kept.
FILENAME = rf"^(?:[^{CONTROLS}{BIDI}]*[/\\])?{_IN_NAME}*[^{CONTROLS}{BIDI}/\\. ]{_IN_NAME}*$"
# What "format: email" does not say: addresses at special-use domains (.test, .local, ...) are
# refused. Only the schema carries this one (pydantic's regex has no lookahead): _address checks.
# The superuser's internal mail domains (empresa.local) are accepted besides; the description
# says so, as the pattern cannot (they are not known when the schema is made).
_ANY_CASE = "|".join("".join(f"[{c}{c.upper()}]" for c in d) for d in SPECIAL_USE_DOMAIN_NAMES)
ADDRESS = rf"^(?!.*[@.](?:{_ANY_CASE})\.?$)"
ADDRESS_RULE = (
    "Addresses at special-use domains (.local, .test, .invalid, ...) are refused, "
    "except in the internal mail domains the portal's superuser lists."
)
MIME_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
IDEMPOTENCY_KEY = r"^[^\x00-\x20\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"

MSG_OBJECT = "Send a JSON object."
MSG_ADDRESSES = "Give a list of email addresses (strings)."
MSG_STRING = "Give a string."
MSG_UNKNOWN = "Unknown field."
MSG_UNICODE = "Not valid Unicode text (an unpaired surrogate)."
MSG_NO_RECIPIENT = "Give at least one recipient."
MSG_NO_BODY = "Give a text or an HTML body."
MSG_FILENAME = "Give the file name."
MSG_BIDI = "Direction-changing characters are not allowed in file names."
MSG_CONTROL = "Line breaks and control characters are not allowed in file names."
# A message per field for a value of the wrong kind, and per field for a broken pattern.
MESSAGES = {
    **dict.fromkeys(RECIPIENT_FIELDS, MSG_ADDRESSES),
    **dict.fromkeys(("subject", "text", "html", "reply_to"), MSG_STRING),
    "attachments": "Give a list of objects {filename, content_type, content_base64}.",
    "filename": MSG_FILENAME,
    "content_type": "Give a MIME type such as application/pdf.",
    "content_base64": "Give the content, base64-encoded.",
    "idempotency_key": "Use 1 to 255 characters, no control characters.",
}
PATTERN_MESSAGES = {
    "subject": "Line breaks and NUL characters are not allowed in the subject.",
    "content_base64": "Not valid base64.",
    "idempotency_key": MESSAGES["idempotency_key"],
}
MESSAGE_ERROR = "portal_message"  # the type of our own errors: their text is the message


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError(MESSAGE_ERROR, message)


def _unicode(value: str) -> str:
    # JSON may carry a lone surrogate (\ud800): no mail, header or database can hold one.
    try:
        value.encode()
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", MSG_UNICODE) from None
    return value


def _address(value: str, info: ValidationInfo) -> str:
    internal = (info.context or {}).get("internal_domains", ())
    try:
        normalize_email(value, internal)
    except EmailNotValidError as exc:
        raise _refuse(f"Not a valid email address: {value!r}. {exc}") from None
    return value


def _plain_name(value: object) -> object:
    """Say which characters spoil a file name before the pattern refuses it."""
    if isinstance(value, str):
        if re.search(f"[{BIDI}]", value):
            raise _refuse(MSG_BIDI)
        if re.search(f"[{CONTROLS}]", value):
            raise _refuse(MSG_CONTROL)
    return value


def _base_name(value: str) -> str:
    # A path would be taken for one by the recipient's mail program: keep its last part.
    return re.split(r"[/\\]", value)[-1].strip(" ")


Text = Annotated[str, AfterValidator(_unicode)]
Address = Annotated[
    str,
    Field(json_schema_extra={"format": "email", "pattern": ADDRESS, "description": ADDRESS_RULE}),
    AfterValidator(_unicode),
    AfterValidator(_address),
]
Addresses = Annotated[list[Address], Field(max_length=MAX_RECIPIENTS)]
Subject = Annotated[str, Field(max_length=MAX_SUBJECT_CHARS, pattern=NO_LINE_BREAKS)]
Filename = Annotated[
    str,
    Field(max_length=MAX_NAME_CHARS, pattern=FILENAME),
    BeforeValidator(_plain_name),
    AfterValidator(_base_name),
]
MimeType = Annotated[str, Field(max_length=MAX_NAME_CHARS, pattern=MIME_TYPE)]
Status = Literal["queued", "sending", "sent", "deferred", "failed", "unknown"]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
MessageId = Annotated[int, Field(ge=1, le=MAX_DATABASE_ID)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY)]


class _Request(BaseModel):
    # Strict: "1" is no number and 1 no string; a field not listed here is an error.
    model_config = ConfigDict(extra="forbid", strict=True)


class Attachment(_Request):
    """A file to attach; a path as its name is reduced to the file's own name."""

    filename: Filename
    content_type: MimeType = "application/octet-stream"
    content_base64: Annotated[str, Field(pattern=BASE64)]

    def to_outbox(self) -> outbox.Attachment:
        return outbox.Attachment(
            self.filename, self.content_type, base64.b64decode(self.content_base64)
        )


def _one_of_them_given(fields: tuple[str, ...], given: dict) -> dict:
    return {"anyOf": [{"required": [name], "properties": {name: given}} for name in fields]}


class NewMessage(_Request):
    """A mail to queue. null is the same as leaving a field out."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": (
                f"At least one recipient in to, cc or bcc (at most {MAX_RECIPIENTS} in all); "
                "a text or an html body."
            ),
            "allOf": [
                _one_of_them_given(RECIPIENT_FIELDS, {"type": "array", "minItems": 1}),
                _one_of_them_given(BODY_FIELDS, {"type": "string", "minLength": 1}),
            ],
        }
    )

    to: Addresses | None = None
    cc: Addresses | None = None
    bcc: Addresses | None = None
    subject: Subject | None = None
    text: Text | None = None
    html: Text | None = None
    reply_to: Address | None = None
    attachments: list[Attachment] | None = None

    def missing(self) -> dict[str, str]:
        """What the allOf above asks for and the mail lacks, by field."""
        errors = {}
        if not any(getattr(self, name) for name in RECIPIENT_FIELDS):
            errors["to"] = MSG_NO_RECIPIENT
        if not any(getattr(self, name) for name in BODY_FIELDS):
            errors["text"] = MSG_NO_BODY
        return errors

    def send_arguments(self) -> dict:
        """The keyword arguments for outbox.send."""
        return {
            **{name: getattr(self, name) or [] for name in RECIPIENT_FIELDS},
            "subject": self.subject or "",
            "text": self.text,
            "html": self.html,
            "reply_to": self.reply_to,
            "attachments": [item.to_outbox() for item in self.attachments or ()],
        }


class Accepted(BaseModel):
    """A queued mail."""

    id: int = Field(description="Use it to ask for the delivery state.")
    message_id: str = Field(description="The mail's Message-ID header.")
    status: Status


class MessageState(BaseModel):
    """A mail's delivery state."""

    id: int
    message_id: str
    status: Status
    attempts: int = Field(ge=0)
    last_reply: str | None = Field(description="The mail server's last answer.")
    created_at: Timestamp
    sent_at: Timestamp | None
    recipients: dict[str, Literal["queued", "sent", "deferred", "failed"]] = Field(
        description="Each recipient's state."
    )


class Error(BaseModel):
    """What went wrong."""

    error: str


class ValidationErrors(BaseModel):
    """A message per bad field."""

    errors: dict[str, str] = Field(
        description="to, subject, attachments[0].filename, body, Idempotency-Key, ..."
    )


NewMessageT = TypeVar("NewMessageT", bound=NewMessage)


def _where(loc: tuple) -> tuple[str, str]:
    """The error's key in the answer (to, attachments[0].filename) and its field's name."""
    if loc and loc[0] == "attachments" and len(loc) >= 3:
        return f"attachments[{loc[1]}].{loc[2]}", str(loc[2])
    name = str(loc[0]) if loc else "body"
    return name, name


def _message(error: dict, name: str) -> str:
    kind = error["type"]
    if kind in (MESSAGE_ERROR, "string_unicode"):
        return MSG_UNICODE if kind == "string_unicode" else error["msg"]
    if kind == "extra_forbidden":
        return MSG_UNKNOWN
    if kind == "string_too_long":
        return f"Use at most {error['ctx']['max_length']} characters."
    if kind == "too_long":
        return f"At most {MAX_RECIPIENTS} recipients per mail."
    if kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(name, MESSAGES[name])
    return MESSAGES.get(name, MSG_UNKNOWN)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as the API reports them: the first message per field."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        key, name = _where(error["loc"])
        errors.setdefault(key, _message(error, name))
    return errors


def parse_message(
    body: object,
    model: type[NewMessageT] = NewMessage,
    internal_domains: tuple[str, ...] = (),
) -> tuple[NewMessageT | None, dict[str, str]]:
    """The mail in a request body (or a batch's item), or the errors per field.

    Addresses in `internal_domains` are accepted although their domain is special-use.
    """
    if not isinstance(body, dict):
        return None, {"body": MSG_OBJECT}
    try:
        message = model.model_validate(body, context={"internal_domains": internal_domains})
    except ValidationError as exc:
        return None, field_errors(exc)
    errors = message.missing()
    return (None, errors) if errors else (message, {})
