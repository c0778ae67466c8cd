"""A mail as its reader sees it: decoded headers, the text and HTML parts, the attachments."""

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")  # never Bcc
CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")  # a type a download may carry as it is
OCTETS = "application/octet-stream"
UNNAMED = "(no name)"


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Reading:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def headers(parsed: EmailMessage) -> list[tuple[str, str]]:
    """The headers a reader is shown, RFC 2047 words decoded, in a fixed order."""
    shown = []
    for name in SHOWN_HEADERS:
        for value in parsed.get_all(name, []):
            shown.append((name, str(value)))
    return shown


def _content(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    try:
        return part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


def text_body(parsed: EmailMessage) -> str | None:
    """The plain-text part, transfer encoding (quoted-printable, base64) undone."""
    return _content(parsed.get_body(preferencelist=("plain",)))


def html_body(parsed: EmailMessage) -> str | None:
    """The HTML part as the sender wrote it: show it only where no script can run."""
    return _content(parsed.get_body(preferencelist=("html",)))


def attachments(parsed: EmailMessage) -> list[Attachment]:
    found = []
    for part in parsed.iter_attachments():
        declared = part.get_content_type()
        found.append(
            Attachment(
                name=part.get_filename() or UNNAMED,
                content_type=declared if CONTENT_TYPE.match(declared) else OCTETS,
                data=part.get_payload(decode=True) or b"",
            )
        )
    return found


def read(raw: bytes) -> Reading:
    """Everything a reader is shown of a mail."""
    parsed = parse(raw)
    return Reading(headers(parsed), text_body(parsed), html_body(parsed), attachments(parsed))
