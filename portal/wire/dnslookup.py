"""DNS lookups for the domain checks: the resolver interface and its dnspython implementation."""

import time
from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import dns.exception
import dns.rdatatype
import dns.resolver

from portal.exceptions import PortalError

DEFAULT_DNS_TIMEOUT = 5.0  # seconds for one lookup, all retries included
# EDNS payload size that avoids IP fragmentation (DNS Flag Day 2020); DKIM keys exceed 512 bytes.
EDNS_PAYLOAD = 1232


class DnsLookupError(PortalError):
    """A lookup gave no usable answer: timeout, SERVFAIL, refused, or a malformed name."""


class DnsResolver(Protocol):
    """Looks up TXT records; the domain checks need nothing else from a resolver."""

    def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined; [] for NXDOMAIN/NODATA; DnsLookupError otherwise."""
        ...


@runtime_checkable
class AddressResolver(Protocol):
    """A resolver that also finds addresses and mail exchangers, for SPF's a and mx terms."""

    def txt(self, name: str) -> list[str]: ...

    def addresses(self, name: str) -> list[str]:
        """The A and AAAA addresses of name; [] when it has none."""
        ...

    def mx(self, name: str) -> list[str]:
        """The mail exchanger host names of name, most preferred first; [] when none."""
        ...


class DnsPythonResolver:
    """dnspython's stub resolver: the system's nameservers, or the ones given."""

    def __init__(
        self,
        timeout: float = DEFAULT_DNS_TIMEOUT,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
    ) -> None:
        self.timeout = timeout
        self._nameservers = list(nameservers) if nameservers else None
        self._port = port
        self._resolver: dns.resolver.Resolver | None = None

    @classmethod
    def at(cls, address: str, port: int = 53, timeout: float = DEFAULT_DNS_TIMEOUT) -> Self:
        """A resolver that asks only the nameserver at address:port."""
        return cls(timeout, [address], port)

    def txt(self, name: str, *, lifetime: float | None = None) -> list[str]:
        """Each TXT record's strings joined (RFC 7208 3.3); [] when there is none."""
        answer = self._query(name, "TXT", lifetime)
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]

    def addresses(self, name: str, *, lifetime: float | None = None) -> list[str]:
        """The A then AAAA addresses of name."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            found.extend(rdata.address for rdata in self._query(name, rdtype, lifetime))
        return found

    def mx(self, name: str, *, lifetime: float | None = None) -> list[str]:
        """The exchanger names of name, by preference; the null MX "." (RFC 7505) is left out."""
        records = sorted(self._query(name, "MX", lifetime), key=lambda r: r.preference)
        names = (r.exchange.to_text(omit_final_dot=True) for r in records)
        return [n for n in names if n not in ("", ".")]

    def _query(self, name: str, rdtype: str, lifetime: float | None) -> list:
        budget = self.timeout if lifetime is None else min(self.timeout, lifetime)
        if budget <= 0:
            raise DnsLookupError(f"no time left to look up {name}")
        started = time.monotonic()
        try:
            resolver = self._configured()
            answer = resolver.resolve(
                name, dns.rdatatype.from_text(rdtype), lifetime=budget, search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            waited = time.monotonic() - started
            raise DnsLookupError(f"no answer for {name} within {waited:.1f} s") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsLookupError(f"the nameservers failed to answer for {name}") from exc
        except dns.exception.DNSException as exc:
            raise DnsLookupError(f"{name} could not be looked up: {exc}") from exc
        return list(answer)

    def _configured(self) -> dns.resolver.Resolver:
        # Built on first use: reading /etc/resolv.conf can fail, and then only the lookup fails.
        if self._resolver is None:
            resolver = dns.resolver.Resolver(configure=self._nameservers is None)
            if self._nameservers is not None:
                resolver.nameservers = self._nameservers
            resolver.port = self._port
            resolver.timeout = self.timeout
            resolver.use_edns(0, 0, EDNS_PAYLOAD)
            self._resolver = resolver
        return self._resolver


class CachedLookups:
    """The lookups of one check: each answer asked once, and all of them within one deadline."""

    def __init__(self, resolver: DnsResolver, timeout: float) -> None:
        self._resolver = resolver
        self._deadline = time.monotonic() + timeout
        self._answers: dict[tuple[str, str], list[str] | DnsLookupError] = {}

    def txt(self, name: str) -> list[str]:
        return self._ask("txt", name)

    def addresses(self, name: str) -> list[str]:
        return self._ask("addresses", name)

    def mx(self, name: str) -> list[str]:
        return self._ask("mx", name)

    def _ask(self, kind: str, name: str) -> list[str]:
        key = (kind, name.lower().removesuffix("."))
        if key not in self._answers:
            self._answers[key] = self._lookup(kind, name)
        answer = self._answers[key]
        if isinstance(answer, DnsLookupError):
            raise answer
        return answer

    def _lookup(self, kind: str, name: str) -> list[str] | DnsLookupError:
        remaining = self._deadline - time.monotonic()
        lookup = getattr(self._resolver, kind, None)
        if remaining <= 0:
            return DnsLookupError("the check ran out of time")
        if lookup is None:
            return DnsLookupError(f"this resolver cannot look up {kind}")
        try:
            if isinstance(self._resolver, DnsPythonResolver):
                return lookup(name, lifetime=remaining)
            return lookup(name)
        except DnsLookupError as exc:
            return exc
