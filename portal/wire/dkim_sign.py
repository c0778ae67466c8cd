"""DKIM-signing a mail's bytes with a key given as a value (dkimpy, relaxed/relaxed)."""

from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import getaddresses

# Signed where present; From always is.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "Sender",
    "Cc",
)


@dataclass(frozen=True)
class SigningKey:
    """What signing needs: the domain (d=), the selector (s=) and the private key in PEM."""

    domain: str
    selector: str
    private_pem: bytes = field(repr=False)


def from_domain(raw: bytes) -> str | None:
    """The domain of the mail's From address, lower-case; None without one."""
    headers = BytesHeaderParser().parsebytes(raw)
    addresses = [addr for _, addr in getaddresses(headers.get_all("From") or []) if "@" in addr]
    if len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].strip().lower().rstrip(".") or None


def sign(raw: bytes, key: SigningKey) -> bytes:
    """The mail with a DKIM-Signature header in front; the rest of the bytes unchanged."""
    import dkim  # here: it loads dnspython, which a worker sending unsigned mail never needs

    headers = BytesHeaderParser().parsebytes(raw)
    present = [name for name in SIGNED_HEADERS if name in headers]
    signature = dkim.sign(
        raw,
        key.selector.encode(),
        key.domain.encode(),
        key.private_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[name.encode() for name in present],
    )
    return signature + raw
