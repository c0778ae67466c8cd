"""The CA certificates an SMTP configuration trusts besides the system's: read and described."""

import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

MAX_BUNDLE_CHARS = 200_000  # a few dozen certificates; more is no CA bundle
MSG_NOT_PEM = (
    "Not a PEM certificate: paste or upload one or more blocks from "
    "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
)
MSG_TOO_LONG = f"Use at most {MAX_BUNDLE_CHARS} characters."


@dataclass(frozen=True)
class TrustedCertificate:
    subject: str
    expires: datetime


def _name(certificate: x509.Certificate) -> str:
    common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else certificate.subject.rfc4514_string()


def read_bundle(pem: str) -> tuple[TrustedCertificate, ...]:
    """The certificates in PEM text; ValueError (its message for the admin) if it holds none.

    Checked by cryptography and by the ssl module that will use it, so what is saved loads.
    """
    if len(pem) > MAX_BUNDLE_CHARS:
        raise ValueError(MSG_TOO_LONG)
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
        ssl.create_default_context(cadata=pem)
    except (ValueError, ssl.SSLError, UnicodeError):
        raise ValueError(MSG_NOT_PEM) from None
    return tuple(TrustedCertificate(_name(c), c.not_valid_after_utc) for c in certificates)


def describe(pem: str | None) -> tuple[TrustedCertificate, ...]:
    """What a saved bundle holds, for the page; nothing for none (or one that no longer reads)."""
    if not pem:
        return ()
    try:
        return read_bundle(pem)
    except ValueError:
        return ()
