"""SSRF guard: decide which address an SMTP connection may use before anything connects."""

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from portal.exceptions import PortalError

DEFAULT_SMTP_PORTS: frozenset[int] = frozenset({25, 465, 587, 2525})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)*{_LABEL}")
# A last label like this makes inet_aton() read the name as an IPv4 address ("127.1", "0x7f.1").
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_INTERNAL_NAMES = ("localhost", "metadata.google.internal")

# Checked before is_global, whose answers changed across Python versions (CVE-2024-4032).
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), label)
    for label, nets in (
        ("unspecified", "0.0.0.0/8 ::/128"),
        ("loopback", "127.0.0.0/8 ::1/128"),
        ("private", "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16"),
        ("carrier-grade NAT", "100.64.0.0/10"),
        ("link-local", "169.254.0.0/16 fe80::/10"),
        ("IETF protocol", "192.0.0.0/24"),
        ("documentation", "192.0.2.0/24 198.51.100.0/24 203.0.113.0/24 2001:db8::/32"),
        ("6to4 relay", "192.88.99.0/24"),
        ("benchmarking", "198.18.0.0/15"),
        ("multicast", "224.0.0.0/4 ff00::/8"),
        ("broadcast", "255.255.255.255/32"),
        ("reserved", "240.0.0.0/4"),
        ("local NAT64", "64:ff9b:1::/48"),
        ("discard-only", "100::/64"),
        ("Teredo", "2001::/32"),
        ("ORCHID", "2001:10::/28"),
        ("unique-local", "fc00::/7"),
        ("site-local", "fec0::/10"),
    )
    for net in nets.split()
)
# IPv6 forms that carry an IPv4 address in their last 32 bits: mapped, compatible, NAT64.
_EMBEDS_V4 = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "::/96", "64:ff9b::/96"))

_COARSE = {
    "port": "This port is not allowed.",
    "address": "This destination is not allowed.",
    "resolve": "The host name could not be resolved.",
}


class EgressError(PortalError):
    """A refused destination: `message` for the superuser, `coarse` safe to show anyone."""

    def __init__(self, kind: str, message: str, coarse: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.coarse = coarse or _COARSE[kind]


@dataclass(frozen=True)
class EgressPolicy:
    """Internal destinations and extra ports a superuser has allowed."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    extra_ports: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, allowlist: str | None, ports: str | None) -> Self:
        """Build a policy from the settings form; ValueError names the first bad entry."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in re.split(r"[,\n]", allowlist or "")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.removeprefix("[").removesuffix("]")))
                continue
            except ValueError as exc:
                detail = f" ({exc})" if "/" in entry else ""
            name = _normalize(entry)
            if "/" in entry or _looks_numeric(name) or not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{entry!r} is not a host name, IP address or network{detail}")
            hosts.add(name)
        extra: set[int] = set()
        for token in filter(None, re.split(r"[,\s]+", ports or "")):
            if not (re.fullmatch(r"[0-9]{1,5}", token) and 1 <= int(token) <= 65535):
                raise ValueError(f"{token!r} is not a port number (1-65535)")
            extra.add(int(token))
        return cls(frozenset(hosts), tuple(networks), frozenset(extra - DEFAULT_SMTP_PORTS))

    def lists(self, host: str, address: str | None = None) -> bool:
        """Whether the superuser listed this destination: its name, or its address in a network."""
        literal = _literal(host)
        candidates = [literal] if literal is not None else []
        if address is not None:
            candidates.append(ipaddress.ip_address(address))
        if literal is None and _normalize(host) in self.allowed_hosts:
            return True
        return any(a in n for a in candidates for n in self.allowed_networks)

    def describe(self) -> str:
        """One line for the settings page and the audit log."""
        internal = sorted(self.allowed_hosts) + [str(n) for n in self.allowed_networks]
        parts = [f"allowed internal: {', '.join(internal)}" if internal else "no internal hosts"]
        if self.extra_ports:
            parts.append("extra ports: " + ", ".join(map(str, sorted(self.extra_ports))))
        return "; ".join(parts)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo() gives for host, unique, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_checked(
    host: str,
    port: int,
    policy: EgressPolicy,
    resolver: Resolver = system_resolver,
    base_ports: frozenset[int] = DEFAULT_SMTP_PORTS,
) -> str:
    """The one address to connect to for host:port, or EgressError; never connects itself.

    `base_ports` are allowed besides the policy's extra ports (HTTPS calls pass {443}).
    """
    allowed_ports = base_ports | policy.extra_ports
    if port not in allowed_ports:
        listed = ", ".join(map(str, sorted(allowed_ports)))
        message = f"Port {port} is not allowed; allowed ports: {listed}."
        raise EgressError("port", message, f"Port {port} is not allowed. Use one of {listed}.")
    host = host.strip()
    literal = _literal(host)
    name = host if literal else _normalize(host)
    literal = literal or _literal(name)
    if literal:
        _check(literal, policy, None)
        return str(literal)
    if name in policy.allowed_hosts:
        return str(_resolve(name, port, resolver)[0])
    if name in _INTERNAL_NAMES or name.endswith(".localhost"):
        raise EgressError("address", f"{name} is an internal name; only an allowlist opens it.")
    if _looks_numeric(name):
        raise EgressError("address", f"{host!r} is an IPv4 address in a non-standard spelling.")
    if not _HOST_NAME.fullmatch(name):
        raise EgressError("resolve", f"{host!r} is not a valid host name.")
    addresses = _resolve(name, port, resolver)
    for address in addresses:  # one bad answer refuses all: DNS rebinding mixes them
        _check(address, policy, name)
    return str(addresses[0])


def _normalize(host: str) -> str:
    """Lower-case ASCII without the trailing dot; "" when IDNA cannot encode it."""
    name = host.strip().lower().removesuffix(".")
    try:  # the resolver applies IDNA too, and "ｌｏｃａｌｈｏｓｔ" encodes as "localhost"
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _looks_numeric(name: str) -> bool:
    return bool(_NUMERIC_LABEL.fullmatch(name.rpartition(".")[2]))


def _literal(host: str) -> IPAddress | None:
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        return ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        if bracketed:
            raise EgressError("address", f"{host!r} is not a valid IP address.") from None
        return None


def _resolve(name: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(name, port)
        addresses = [ipaddress.ip_address(a) for a in answers]
    except (OSError, UnicodeError, ValueError) as exc:
        raise EgressError("resolve", f"{name} could not be resolved: {exc}") from exc
    if not addresses:
        raise EgressError("resolve", f"{name} resolved to no addresses.")
    return addresses


def _check(address: IPAddress, policy: EgressPolicy, name: str | None) -> None:
    reason = _refusal(address, policy)
    if reason:
        subject = f"{name} resolves to {reason}" if name else reason
        raise EgressError("address", f"{subject}, which is not allowed without an allowlist.")


def _refusal(address: IPAddress, policy: EgressPolicy) -> str | None:
    """Why address is refused, or None when it is public or allowlisted."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))  # "fe80::1%eth0": the zone is no defence
    if any(address in network for network in policy.allowed_networks):
        return None
    for network, label in _BLOCKED:
        if address in network:
            return f"{address} ({label} range {network})"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.sixtofour
        if embedded is None and any(address in network for network in _EMBEDS_V4):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _refusal(embedded, policy)
            return f"{address} (embeds {inner})" if inner else None
    if not address.is_global:
        return f"{address} (not globally routable)"
    return None
