"""Reading what DNS publishes: domain names, DKIM and DMARC tag lists, SPF terms, addresses.

Organizational domains (for DMARC's relaxed alignment) come from the Public Suffix List that
the pinned `publicsuffixlist` package ships, so "mail.example.co.uk" aligns with "example.co.uk".
"""

import base64
import binascii
import functools
import ipaddress
import re

from publicsuffixlist import PublicSuffixList

from portal.wire.sentence import N_, Sentence


def organizational_domain(name: str) -> str:
    """The registered domain of name ("example.co.uk" for "mail.example.co.uk")."""
    return _suffixes().privatesuffix(name) or name


def domain_name(domain: str) -> str:
    """Lower-case ASCII without the trailing dot; left as typed when IDNA cannot encode it."""
    name = domain.strip().lower().removesuffix(".")
    try:
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # reads the list the package ships; nothing is fetched


def tag_list(record: str) -> dict[str, str]:
    """A DKIM or DMARC tag list ("v=DKIM1; k=rsa; p=...") as a dict; the first of a tag wins."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        tag, sep, value = part.partition("=")
        if sep and tag.strip():
            tags.setdefault(tag.strip().lower(), value.strip())
    return tags


def is_dkim(tags: dict[str, str]) -> bool:
    """Whether a tag list is a DKIM key record (RFC 6376 3.6.1)."""
    # v= is optional (RFC 6376 3.6.1), but when present it must be the first tag and say DKIM1.
    return (
        "p" in tags
        and (next(iter(tags)) == "v") == ("v" in tags)
        and tags.get("v", "DKIM1") == "DKIM1"
    )


def key_length(key: str) -> int:
    """The length in bytes of a base64 key; 0 when it is not base64."""
    try:
        return len(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        return 0


def canonical_address(text: str) -> str | None:
    """The address in its canonical spelling, or None when text is no IP address."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None


def ip_term(address: str) -> str:
    """The SPF term that covers exactly this address."""
    return f"ip{ipaddress.ip_address(address).version}:{address}"


def relay_label(relay_host: str | None, addresses: list[str]) -> str:
    """The relay as messages name it: "smtp.relay.example (203.0.113.7)"."""
    listed = ", ".join(addresses)
    if relay_host and canonical_address(relay_host) not in addresses:
        return f"{relay_host} ({listed})" if listed else relay_host
    return listed or Sentence(N_("(none)"))


def with_terms(record: str, terms: list[str]) -> str:
    """The SPF record with terms added before its all term or redirect."""
    parts = record.split()
    at = next(
        (i for i, t in enumerate(parts) if re.fullmatch(r"[+?~-]?all|redirect=.*", t, re.I)),
        len(parts),
    )
    return " ".join([*parts[:at], *terms, *parts[at:]])


def dmarc_records(texts: list[str]) -> list[str]:
    """The TXT strings that are DMARC records: "v=DMARC1" first (RFC 7489 6.6.3)."""
    return [t.strip() for t in texts if re.match(r"v\s*=\s*DMARC1\s*(;|$)", t.strip())]
