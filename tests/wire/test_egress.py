"""The SSRF guard: which SMTP destinations are refused, and what each audience is told."""

import ipaddress
import socket

import pytest

from portal.exceptions import PortalError
from portal.wire.egress import (
    DEFAULT_SMTP_PORTS,
    EgressError,
    EgressPolicy,
    resolve_checked,
    system_resolver,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
OPEN = EgressPolicy()

FORBIDDEN_V4 = [
    "0.0.0.0",  # noqa: S104 -- a destination, not a bind address
    "0.1.2.3",
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.100.31",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.0.1",
    "192.0.0.170",
    "198.18.0.1",
    "198.19.255.255",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "192.88.99.1",
]
FORBIDDEN_V6 = [
    "::",
    "::1",
    "0:0:0:0:0:0:0:1",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd00::1",
    "fec0::1",
    "ff02::1",
    "ff05::1:3",
    "2001:db8::1",
    "100::1",
    "2001:10::1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "::ffff:127.0.0.1",
    "::ffff:172.31.100.31",
    "::ffff:0.0.0.0",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
FORBIDDEN = FORBIDDEN_V4 + FORBIDDEN_V6
# inet_aton() spellings of 127.0.0.1 (GitLab's url_blocker_spec) and of a public address.
ODD_SPELLINGS = [
    "0177.0.0.1",
    "0177.1",
    "017700000001",
    "0x7f.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "2130706433",
    "127.1",
    "127.0.1",
    "127.000.000.001",
    "1572395042",
    "0x5d.0xb8.0xd8.0x22",
]


class FakeResolver:
    """Answers every name with the given addresses and records each call."""

    def __init__(self, *answers: str, error: Exception | None = None):
        self.answers = list(answers)
        self.error = error
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if self.error:
            raise self.error
        return self.answers


def refused(kind: str, host: str, port: int = 25, policy=OPEN, resolver=None) -> EgressError:
    """resolve_checked must refuse with kind, and tell company admins nothing internal."""
    with pytest.raises(EgressError) as info:
        resolve_checked(host, port, policy, resolver or FakeResolver(PUBLIC_V4))
    exc = info.value
    assert exc.kind == kind
    assert str(exc) == exc.message
    if host:
        assert host.strip("[]") not in exc.coarse
    for answer in getattr(resolver, "answers", []):
        assert answer not in exc.coarse
    return exc


@pytest.mark.parametrize("address", FORBIDDEN)
def test_name_resolving_to_forbidden_address_is_refused(address):
    exc = refused("address", "evil.example.com", resolver=FakeResolver(address))
    assert exc.coarse == "This destination is not allowed."
    assert "evil.example.com" in exc.message


@pytest.mark.parametrize(
    "host", FORBIDDEN_V4 + FORBIDDEN_V6 + [f"[{a}]" for a in FORBIDDEN_V6] + ["[127.0.0.1]"]
)
def test_forbidden_literal_is_refused_without_dns(host):
    resolver = FakeResolver(PUBLIC_V4)
    refused("address", host, resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("host", ODD_SPELLINGS)
@pytest.mark.parametrize(
    "resolver", [system_resolver, FakeResolver(PUBLIC_V4)], ids=["sys", "fake"]
)
def test_odd_ipv4_spellings_are_refused(host, resolver):
    refused("address", host, resolver=resolver)


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST.", "smtp.localhost", "ｌｏｃａｌｈｏｓｔ", "metadata.google.internal"],
)
def test_internal_names_are_refused_even_with_a_public_answer(host):
    resolver = FakeResolver(PUBLIC_V4)
    refused("address", host, resolver=resolver)
    assert resolver.calls == []


def test_localhost_is_refused_with_the_system_resolver():
    refused("address", "localhost", resolver=system_resolver)


@pytest.mark.parametrize("private", ["10.0.0.5", "127.0.0.1", "::1", "169.254.169.254"])
@pytest.mark.parametrize("private_first", [True, False])
def test_mixed_answer_is_refused(private, private_first):
    answers = [private, PUBLIC_V4] if private_first else [PUBLIC_V4, private]
    refused("address", "rebind.example.com", resolver=FakeResolver(*answers))


@pytest.mark.parametrize("port", [0, 22, 80, 443, 3306, 6379, 11211, 1025, 65535])
def test_other_ports_are_refused_before_resolving(port):
    resolver = FakeResolver(PUBLIC_V4)
    exc = refused("port", "smtp.example.com", port, resolver=resolver)
    assert resolver.calls == []
    assert exc.coarse == f"Port {port} is not allowed. Use one of 25, 465, 587, 2525."


@pytest.mark.parametrize(
    ("resolver", "host"),
    [
        (
            FakeResolver(error=socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
            "smtp.example.com",
        ),
        (FakeResolver(), "smtp.example.com"),
        (FakeResolver("not-an-address"), "smtp.example.com"),
        (system_resolver, "does-not-exist.invalid"),
        (FakeResolver(PUBLIC_V4), "smtp example.com"),
        (FakeResolver(PUBLIC_V4), ""),
        (FakeResolver(PUBLIC_V4), "a" * 64 + ".example.com"),
    ],
)
def test_unresolvable_names_are_refused(resolver, host):
    exc = refused("resolve", host, resolver=resolver)
    assert exc.coarse == "The host name could not be resolved."


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([PUBLIC_V4], PUBLIC_V4),
        ([PUBLIC_V6], PUBLIC_V6),
        ([PUBLIC_V6, PUBLIC_V4], PUBLIC_V6),
        (["::ffff:93.184.216.34"], "::ffff:93.184.216.34"),
        (["64:ff9b::5db8:d822"], "64:ff9b::5db8:d822"),
        (["2002:5db8:d822::1"], "2002:5db8:d822::1"),
    ],
)
@pytest.mark.parametrize("port", sorted(DEFAULT_SMTP_PORTS))
def test_public_address_is_returned_after_one_lookup(answers, expected, port):
    resolver = FakeResolver(*answers)
    address = resolve_checked("smtp.example.com", port, OPEN, resolver)
    assert ipaddress.ip_address(address) == ipaddress.ip_address(expected)
    assert resolver.calls == [("smtp.example.com", port)]


@pytest.mark.parametrize("host", [PUBLIC_V4, PUBLIC_V6, f"[{PUBLIC_V6}]"])
def test_public_literal_is_returned_without_dns(host):
    resolver = FakeResolver()
    assert resolve_checked(host, 587, OPEN, resolver) == host.strip("[]")
    assert resolver.calls == []


@pytest.mark.parametrize(
    ("networks", "host", "answer", "expected"),
    [
        ("10.0.0.5/32", "relay.example.com", "10.0.0.5", "10.0.0.5"),
        ("10.1.0.0/16", "relay.example.com", "10.1.2.3", "10.1.2.3"),
        ("10.0.0.5/32", "relay.example.com", "::ffff:10.0.0.5", "::ffff:10.0.0.5"),
        ("127.0.0.1/32", "127.0.0.1", None, "127.0.0.1"),
        ("::1/128", "[::1]", None, "::1"),
        ("fe80::/10", "fe80::1%eth0", None, "fe80::1%eth0"),
        ("fd00::/8", "relay.example.com", "fd00::25", "fd00::25"),
    ],
)
def test_allowlisted_network_passes(networks, host, answer, expected):
    policy = EgressPolicy.parse(networks, None)
    resolver = FakeResolver(answer or PUBLIC_V4)
    address = resolve_checked(host, 25, policy, resolver)
    assert ipaddress.ip_address(address) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("answer", ["10.0.0.6", "10.2.0.1", "127.0.0.1"])
def test_allowlisted_network_does_not_open_its_neighbours(answer):
    policy = EgressPolicy.parse("10.0.0.5/32, 10.1.0.0/16", None)
    refused("address", "relay.example.com", policy=policy, resolver=FakeResolver(answer))


@pytest.mark.parametrize("host", ["mail.internal", "MAIL.Internal.", "localhost"])
def test_allowlisted_host_passes_unchecked(host):
    policy = EgressPolicy.parse("mail.internal\nlocalhost", None)
    resolver = FakeResolver("10.9.9.9", "127.0.0.1")
    assert resolve_checked(host, 25, policy, resolver) == "10.9.9.9"
    assert resolver.calls == [(host.lower().rstrip("."), 25)]


def test_allowlisted_localhost_with_the_system_resolver():
    policy = EgressPolicy.parse("localhost", None)
    assert resolve_checked("localhost", 25, policy) in {"127.0.0.1", "::1"}


def test_allowlisted_host_still_needs_to_resolve():
    policy = EgressPolicy.parse("mail.internal", None)
    refused("resolve", "mail.internal", policy=policy, resolver=FakeResolver())


def test_allowlisted_host_does_not_open_its_subdomains():
    policy = EgressPolicy.parse("mail.internal", None)
    refused("address", "x.mail.internal", policy=policy, resolver=FakeResolver("10.9.9.9"))


def test_extra_port_passes():
    policy = EgressPolicy.parse(None, "1025")
    resolver = FakeResolver(PUBLIC_V4)
    assert resolve_checked("smtp.example.com", 1025, policy, resolver) == PUBLIC_V4
    refused("port", "smtp.example.com", 1026, policy=policy)


def test_extra_port_does_not_open_internal_addresses():
    policy = EgressPolicy.parse(None, "6379")
    refused("address", "127.0.0.1", 6379, policy=policy)


def test_refused_destination_never_reaches_a_listening_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        policy = EgressPolicy(extra_ports=frozenset({port}))
        with pytest.raises(EgressError) as info:
            resolve_checked("127.0.0.1", port, policy)
        assert info.value.kind == "address"
        with pytest.raises(TimeoutError):
            listener.accept()


def test_system_resolver_returns_unique_addresses():
    assert system_resolver("127.0.0.1", 25) == ["127.0.0.1"]
    addresses = system_resolver("localhost", 25)
    assert addresses and len(addresses) == len(set(addresses))


def test_egress_error_is_a_portal_error():
    exc = EgressError("address", "10.0.0.5 is private")
    assert isinstance(exc, PortalError)
    assert str(exc) == "10.0.0.5 is private"
    assert exc.coarse == "This destination is not allowed."


def test_parse_accepts_hosts_networks_and_ports():
    policy = EgressPolicy.parse(
        "Mail.Internal.\n10.0.0.5, 10.1.0.0/16\r\n[::1]\n\n 127.0.0.1/32 ,relay_1.corp",
        "1025, 2526 25",
    )
    assert policy.allowed_hosts == {"mail.internal", "relay_1.corp"}
    assert [str(n) for n in policy.allowed_networks] == [
        "10.0.0.5/32",
        "10.1.0.0/16",
        "::1/128",
        "127.0.0.1/32",
    ]
    assert policy.extra_ports == {1025, 2526}
    assert policy.describe() == (
        "allowed internal: mail.internal, relay_1.corp, 10.0.0.5/32, 10.1.0.0/16, ::1/128, "
        "127.0.0.1/32; extra ports: 1025, 2526"
    )


@pytest.mark.parametrize("allowlist", [None, "", " \n , "])
def test_parse_empty(allowlist):
    policy = EgressPolicy.parse(allowlist, allowlist)
    assert policy == EgressPolicy()
    assert policy.describe() == "no internal hosts"


@pytest.mark.parametrize(
    ("allowlist", "named"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        ("10.0.0.1/16", "has host bits set"),
        ("mail.internal, not a host!", "'not a host!'"),
        ("mail.internal/24", "'mail.internal/24'"),
        ("127.1", "'127.1'"),
        ("0x7f000001", "'0x7f000001'"),
        ("-bad.example", "'-bad.example'"),
        ("*.internal", "'*.internal'"),
    ],
)
def test_parse_rejects_bad_allowlist_entries(allowlist, named):
    with pytest.raises(ValueError, match="not a host name") as info:
        EgressPolicy.parse(allowlist, None)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("ports", "named"),
    [
        ("port 70000", "'port'"),
        ("70000", "'70000'"),
        ("0", "'0'"),
        ("25a", "'25a'"),
        ("-1", "'-1'"),
    ],
)
def test_parse_rejects_bad_ports(ports, named):
    with pytest.raises(ValueError, match="not a port number") as info:
        EgressPolicy.parse(None, ports)
    assert named in str(info.value)


@pytest.mark.parametrize("host", ["ünïcode" + "x" * 70 + ".example", "bad..name"])
def test_names_idna_cannot_encode_are_unresolvable(host):
    refused("resolve", host)
    with pytest.raises(ValueError, match="not a host name"):
        EgressPolicy.parse(host, None)
