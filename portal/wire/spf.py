"""SPF evaluation: RFC 7208's check_host for one sending address, within the RFC's lookup limits."""

import ipaddress
import re
from dataclasses import dataclass

from portal.wire.dnslookup import AddressResolver, DnsLookupError
from portal.wire.sentence import N_, Sentence

MAX_LOOKUPS = 10  # include, a, mx, ptr, exists and redirect each count (RFC 7208 4.6.4)
MAX_VOID_LOOKUPS = 2  # lookups that found nothing
MAX_MX_NAMES = 10

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MODIFIER = re.compile(r"([a-z][a-z0-9_.-]*)=(.*)", re.I)
_MECHANISM = re.compile(r"([a-z0-9]+)(?::([^/]*))?(?:/([0-9]+))?(?://([0-9]+))?", re.I)
_MACRO = re.compile(r"%(?:\{([a-z])([0-9]*)(r?)([.+,/_=-]*)\}|(.)|$)", re.I)


@dataclass(frozen=True)
class SpfResult:
    """check_host's answer; `term` is the term that decided it, `reason` why it is an error."""

    result: str  # pass, fail, softfail, neutral, none, permerror or temperror
    term: str | None = None
    reason: str = ""  # a Sentence when this module wrote it, the resolver's words otherwise


class SpfPermError(Exception):
    """The record cannot be evaluated: a syntax error, too many lookups, a missing include."""


def spf_records(texts: list[str]) -> list[str]:
    """The TXT strings that are SPF records (version "v=spf1", RFC 7208 4.5)."""
    return [t.strip() for t in texts if re.fullmatch(r"v=spf1(\s.*)?", t.strip(), re.I | re.S)]


def check_host(address: str, domain: str, resolver: AddressResolver) -> SpfResult:
    """The SPF result for mail from `domain` sent by the server at `address`."""
    state = _State(ipaddress.ip_address(address), domain, resolver)
    try:
        return state.check(domain)
    except SpfPermError as exc:
        return SpfResult("permerror", reason=exc.args[0] if exc.args else str(exc))
    except DnsLookupError as exc:
        return SpfResult("temperror", reason=str(exc))


@dataclass
class _State:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender_domain: str
    resolver: AddressResolver
    lookups: int = 0
    voids: int = 0

    def check(self, domain: str) -> SpfResult:
        records = spf_records(self.resolver.txt(domain))
        if not records:
            return SpfResult(
                "none", reason=Sentence(N_("%(domain)s has no SPF record"), domain=domain)
            )
        if len(records) > 1:
            raise SpfPermError(
                Sentence(
                    N_("%(domain)s publishes %(count)s SPF records instead of one"),
                    domain=domain,
                    count=len(records),
                )
            )
        redirect = None
        for term in records[0].split()[1:]:
            modifier = _MODIFIER.fullmatch(term)
            if modifier:
                if modifier[1].lower() == "redirect":
                    if redirect is not None:
                        raise SpfPermError(
                            Sentence(N_("%(domain)s has more than one redirect="), domain=domain)
                        )
                    redirect = modifier[2]
                continue
            qualifier = term[0] if term[0] in QUALIFIERS else "+"
            if self._matches(term.lstrip("+-~?"), domain):
                return SpfResult(QUALIFIERS[qualifier], term)
        if redirect is None:
            return SpfResult("neutral")  # no all term: as "?all"
        self._count()
        target = self._target(redirect, domain, required=True)
        result = self.check(target)
        if result.result == "none":
            raise SpfPermError(
                Sentence(N_("the redirect target %(target)s has no SPF record"), target=target)
            )
        return result

    def _matches(self, mechanism: str, domain: str) -> bool:
        parsed = _MECHANISM.fullmatch(mechanism)
        if not parsed:
            raise SpfPermError(
                Sentence(
                    N_("%(term)s in the record for %(domain)s is not an SPF term"),
                    term=repr(mechanism),
                    domain=domain,
                )
            )
        name, arg, cidr4, cidr6 = parsed[1].lower(), parsed[2], parsed[3], parsed[4]
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return self._in_network(arg, cidr4, name, domain)
        self._count()
        if name == "include":
            return self._include(self._target(arg, domain, required=True))
        if name == "a":
            return self._near(self._addresses(self._target(arg, domain)), cidr4, cidr6)
        if name == "mx":
            names = self._void(self.resolver.mx(self._target(arg, domain)))
            if len(names) > MAX_MX_NAMES:
                raise SpfPermError(
                    Sentence(
                        N_("the mx term of %(domain)s names more than %(count)s servers"),
                        domain=domain,
                        count=MAX_MX_NAMES,
                    )
                )
            found = [a for n in names for a in self.resolver.addresses(n)]
            return self._near(found, cidr4, cidr6)
        if name == "exists":
            found = self._addresses(self._target(arg, domain, required=True))
            return any(":" not in a for a in found)  # an A record, of any address
        if name == "ptr":
            return False  # deprecated (RFC 7208 5.5): receivers should not rely on it either
        raise SpfPermError(
            Sentence(
                N_("unknown SPF mechanism %(name)s in the record for %(domain)s"),
                name=repr(name),
                domain=domain,
            )
        )

    def _include(self, target: str) -> bool:
        result = self.check(target)
        if result.result == "none":
            raise SpfPermError(
                Sentence(N_("the included domain %(target)s has no SPF record"), target=target)
            )
        return result.result == "pass"

    def _in_network(self, arg: str | None, cidr: str | None, name: str, domain: str) -> bool:
        try:
            network = ipaddress.ip_network(f"{arg}/{cidr}" if cidr else str(arg), strict=False)
        except ValueError:
            raise SpfPermError(
                Sentence(
                    N_("%(term)s in the record for %(domain)s is not valid"),
                    term=f"{name}:{arg}",
                    domain=domain,
                )
            ) from None
        if network.version != int(name[-1]):
            raise SpfPermError(
                Sentence(
                    N_("%(term)s in the record for %(domain)s is the wrong family"),
                    term=f"{name}:{arg}",
                    domain=domain,
                )
            )
        return self.ip.version == network.version and self.ip in network

    def _near(self, addresses: list[str], cidr4: str | None, cidr6: str | None) -> bool:
        prefix = cidr4 if self.ip.version == 4 else cidr6
        if prefix and int(prefix) > self.ip.max_prefixlen:
            raise SpfPermError(
                Sentence(
                    N_("/%(prefix)s is not a prefix length for IPv%(version)s"),
                    prefix=prefix,
                    version=self.ip.version,
                )
            )
        for address in map(ipaddress.ip_address, addresses):
            bits = int(prefix) if prefix else address.max_prefixlen
            if address.version == self.ip.version and self.ip in ipaddress.ip_network(
                (address, bits), strict=False
            ):
                return True
        return False

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfPermError(
                Sentence(
                    N_("SPF for %(domain)s needs more than %(count)s lookups"),
                    domain=self.sender_domain,
                    count=MAX_LOOKUPS,
                )
            )

    def _addresses(self, name: str) -> list[str]:
        return self._void(self.resolver.addresses(name))

    def _void(self, answers: list[str]) -> list[str]:
        if not answers:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise SpfPermError(
                    Sentence(
                        N_("SPF for %(domain)s names domains that do not exist"),
                        domain=self.sender_domain,
                    )
                )
        return answers

    def _target(self, spec: str | None, domain: str, *, required: bool = False) -> str:
        if not spec:
            if required:
                raise SpfPermError(
                    Sentence(
                        N_("a term in the record for %(domain)s lacks its domain"), domain=domain
                    )
                )
            return domain
        return _expand(spec, self, domain).rstrip(".")


def _bad_macro(spec: str, domain: str) -> Sentence:
    return Sentence(
        N_("%(spec)s in the record for %(domain)s has a bad macro"), spec=repr(spec), domain=domain
    )


def _expand(spec: str, state: _State, domain: str) -> str:
    """The domain-spec with its macros filled in (RFC 7208 7)."""
    ip = state.ip
    nibbles = ".".join(ip.exploded.replace(":", "")) if ip.version == 6 else str(ip)
    values = {
        "s": f"postmaster@{state.sender_domain}",
        "l": "postmaster",
        "o": state.sender_domain,
        "d": domain,
        "i": nibbles,
        "p": "unknown",
        "v": "in-addr" if ip.version == 4 else "ip6",
        "h": state.sender_domain,
    }

    def fill(macro: re.Match[str]) -> str:
        if macro[1] is None:
            literal = {"%": "%", "_": " ", "-": "%20"}.get(macro[5] or "")
            if literal is None:
                raise SpfPermError(_bad_macro(spec, domain))
            return literal
        value = values.get(macro[1].lower())
        if value is None or macro[2] == "0":
            raise SpfPermError(_bad_macro(spec, domain))
        parts = re.split("[" + re.escape(macro[4] or ".") + "]", value)
        if macro[3]:
            parts.reverse()
        return ".".join(parts[-int(macro[2]) :] if macro[2] else parts)

    return _MACRO.sub(fill, spec)
