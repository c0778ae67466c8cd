"""SPF evaluation (RFC 7208 check_host) against a real DNS server on loopback."""

import pytest
from support.dns_server import dns_server

from portal.wire.dnscheck import check_domain
from portal.wire.spf import MAX_LOOKUPS, check_host, spf_records

RELAY_IP = "203.0.113.7"


@pytest.fixture
def zone():
    with dns_server() as zone:
        yield zone


def spf(zone, record: str, address: str = RELAY_IP, domain: str = "example.com"):
    """check_host for address, with record published as the one SPF record of domain."""
    zone.txt(domain, record)
    return check_host(address, domain, zone.resolver())


@pytest.mark.parametrize(
    ("record", "result", "term"),
    [
        ("v=spf1 ip4:203.0.113.7 -all", "pass", "ip4:203.0.113.7"),
        ("v=spf1 ip4:198.51.100.0/24 -all", "fail", "-all"),
        ("v=spf1 ip4:198.51.100.0/24 ~all", "softfail", "~all"),
        ("v=spf1 ip4:198.51.100.0/24 ?all", "neutral", "?all"),
        ("v=spf1 ip4:198.51.100.0/24", "neutral", None),
        ("v=spf1 -ip4:203.0.113.0/24 +all", "fail", "-ip4:203.0.113.0/24"),
        ("V=SPF1 IP4:203.0.113.7 -ALL", "pass", "IP4:203.0.113.7"),
        ("v=spf1 ip6:2001:db8::/32 -all", "fail", "-all"),
        ("v=spf1 exp=explain.example.com ip4:203.0.113.7 -all", "pass", "ip4:203.0.113.7"),
    ],
)
def test_the_first_matching_term_decides_with_its_qualifier(zone, record, result, term):
    found = spf(zone, record)

    assert (found.result, found.term) == (result, term)


def test_macros_expand_the_address_forwards_and_reversed(zone):
    zone.a("203.0.113.7._spf.example.net", "127.0.0.2")
    zone.a("7.113.0.203.in-addr.rev.example.net", "127.0.0.2")

    forwards = "v=spf1 exists:%{i}._spf.example.net -all"
    assert spf(zone, forwards).result == "pass"
    assert check_host("203.0.113.8", "example.com", zone.resolver()).result == "fail"
    reversed_ = "v=spf1 exists:%{ir}.%{v}.rev.example.net -all"
    assert spf(zone, reversed_, domain="rev.example").result == "pass"


def test_an_ipv6_relay_is_matched_by_ip6_and_by_aaaa_records(zone):
    zone.a("relay6.example", "2001:db8:25::7")

    relay = "2001:db8:25::9"
    assert spf(zone, "v=spf1 ip6:2001:db8:25::/48 -all", relay, "one.example").result == "pass"
    assert spf(zone, "v=spf1 a:relay6.example//64 -all", relay, "two.example").result == "pass"
    assert spf(zone, "v=spf1 a:relay6.example -all", relay, "three.example").result == "fail"


def test_more_than_ten_lookups_is_a_permanent_error(zone):
    for n in range(MAX_LOOKUPS):
        zone.txt(f"hop{n}.example", f"v=spf1 include:hop{n + 1}.example -all")
    zone.txt(f"hop{MAX_LOOKUPS}.example", f"v=spf1 ip4:{RELAY_IP} -all")

    result = spf(zone, "v=spf1 include:hop0.example -all")

    assert result.result == "permerror"
    assert "more than 10 lookups" in result.reason


def test_ten_lookups_are_allowed(zone):
    for n in range(MAX_LOOKUPS - 1):
        zone.txt(f"hop{n}.example", f"v=spf1 include:hop{n + 1}.example -all")
    zone.txt(f"hop{MAX_LOOKUPS - 1}.example", f"v=spf1 ip4:{RELAY_IP} -all")

    assert spf(zone, "v=spf1 include:hop0.example -all").result == "pass"


def test_an_include_loop_ends_at_the_lookup_limit(zone):
    zone.txt("loop.example", "v=spf1 include:example.com -all")

    assert spf(zone, "v=spf1 include:loop.example -all").result == "permerror"


def test_names_that_do_not_exist_count_as_void_lookups_and_end_in_an_error(zone):
    record = "v=spf1 a:gone1.example a:gone2.example a:gone3.example ip4:203.0.113.7 -all"

    result = spf(zone, record)

    assert result.result == "permerror"
    assert "do not exist" in result.reason


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 ip4:203.0.113.999 -all",
        "v=spf1 ip4:2001:db8::1 -all",
        "v=spf1 frobnicate:example.net -all",
        "v=spf1 a:relay.example/33 -all",
        "v=spf1 include: -all",
        "v=spf1 exists:%{z}.example.net -all",
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 redirect=nospf.example",
    ],
    ids=[
        "bad ip4",
        "ip4 of ipv6",
        "unknown",
        "prefix too long",
        "empty include",
        "bad macro",
        "two redirects",
        "redirect to nothing",
    ],
)
def test_a_record_that_cannot_be_evaluated_is_a_permanent_error(zone, record):
    assert spf(zone, record).result == "permerror"


def test_a_failing_nameserver_for_an_include_is_a_temporary_error(zone):
    zone.servfail("down.example")

    assert spf(zone, "v=spf1 include:down.example -all").result == "temperror"


def test_ptr_is_never_relied_on(zone):
    assert spf(zone, "v=spf1 ptr -all").result == "fail"


def test_only_v_spf1_texts_are_spf_records():
    texts = ["v=spf1 -all", "v=spf10 -all", "google-site-verification=x", "v=spf1", " v=spf1 a "]
    assert spf_records(texts) == ["v=spf1 -all", "v=spf1", "v=spf1 a"]


class TxtOnly:
    """A resolver offering only the Protocol's minimum, TXT, from the real server."""

    def __init__(self, zone):
        self._real = zone.resolver()

    def txt(self, name: str) -> list[str]:
        return self._real.txt(name)


def test_a_txt_only_resolver_checks_ip_terms_and_reports_a_terms_it_cannot_follow(zone):
    zone.txt("example.com", "v=spf1 a:relay.example -all")
    zone.txt("ip.example", f"v=spf1 ip4:{RELAY_IP} -all")
    resolver = TxtOnly(zone)
    common = {"selector": None, "public_key": None, "relay_host": None, "resolver": resolver}

    by_name = check_domain("example.com", relay_addresses=[RELAY_IP], **common)[1]
    by_ip = check_domain("ip.example", relay_addresses=[RELAY_IP], **common)[1]

    assert (by_name.status, by_ip.status) == ("error", "ok")
    assert "this resolver cannot look up addresses" in by_name.message
