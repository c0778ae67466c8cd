"""Placeholder of the DNS check: the interface, with the DKIM record compared; no SPF or DMARC.

Replaced by the full module (dnspython lookups, SPF and DMARC verdicts).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class DnsLookupError(Exception):
    """A lookup timed out or the server failed."""


@dataclass(frozen=True)
class Finding:
    record: str
    status: str
    found: str | None
    message: str
    advice: str | None


class DnsResolver(Protocol):
    def txt(self, name: str) -> list[str]: ...


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        tags[name.strip().lower()] = "".join(value.split())
    return tags


def _dkim(name: str, public_key: str | None, resolver: DnsResolver | None) -> Finding:
    if resolver is None:
        return Finding("DKIM", "error", None, "No resolver is available here.", None)
    try:
        records = [r for r in resolver.txt(name) if "p=" in r]
    except DnsLookupError as exc:
        return Finding("DKIM", "error", None, f"The lookup of {name} failed: {exc}", None)
    if not records:
        return Finding("DKIM", "missing", None, f"No DKIM record at {name}.", "Publish it.")
    tags = _tags(records[0])
    if tags.get("v", "DKIM1") == "DKIM1" and tags.get("p") == "".join((public_key or "").split()):
        return Finding("DKIM", "ok", records[0], "The DKIM record matches the key.", None)
    return Finding("DKIM", "mismatch", records[0], "The DKIM record is another key.", "Fix it.")


def check_domain(
    domain: str,
    *,
    selector: str | None,
    public_key: str | None,
    relay_host: str | None,
    relay_addresses: Sequence[str] = (),
    from_domain: str | None = None,
    resolver: DnsResolver | None = None,
    timeout: float = 5.0,
) -> list[Finding]:
    """DKIM, SPF and DMARC findings for the domain, in that order."""
    dkim = _dkim(f"{selector}._domainkey.{domain}", public_key, resolver)
    unchecked = "Not checked by this version."
    return [
        dkim,
        Finding("SPF", "error", None, unchecked, None),
        Finding("DMARC", "error", None, unchecked, None),
    ]
