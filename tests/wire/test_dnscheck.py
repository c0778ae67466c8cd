"""Domain checks against a real authoritative DNS server on loopback: DKIM, SPF, DMARC verdicts."""

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from support.dns_server import dns_server, silent_dns_server

from portal.wire import dnscheck
from portal.wire.dnscheck import DnsPythonResolver, Finding, Sentence, check_domain

DOMAIN = "example.com"
SELECTOR = "portal202612"
DKIM_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
RELAY = "smtp.relay.example"
RELAY_IP = "203.0.113.7"
RELAY_LABEL = f"{RELAY} ({RELAY_IP})"


def _public_key(private) -> str:
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def key() -> str:
    """A real RSA-2048 public key as the page shows it: longer than one TXT string."""
    return _public_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def other_key() -> str:
    return _public_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def zone():
    """A DNS server for example.com and friends whose relay host has an address."""
    with dns_server() as zone:
        zone.a(RELAY, RELAY_IP)
        yield zone


def check(zone, key, **overrides) -> dict[str, Finding]:
    arguments = {
        "selector": SELECTOR,
        "public_key": key,
        "relay_host": RELAY,
        "resolver": zone.resolver(),
        "timeout": 3.0,
        **overrides,
    }
    findings = check_domain(arguments.pop("domain", DOMAIN), **arguments)
    assert [f.record for f in findings] == ["DKIM", "SPF", "DMARC"]
    return {f.record: f for f in findings}


# DKIM


def test_a_published_key_that_matches_is_ok_and_shows_the_record_joined(zone, key):
    record = f"v=DKIM1; k=rsa; p={key}"
    zone.txt(DKIM_NAME, record)

    dkim = check(zone, key)["DKIM"]

    assert (dkim.status, dkim.found, dkim.advice) == ("ok", record, None)
    assert dkim.message == Sentence(dnscheck.DKIM_OK, name=DKIM_NAME)
    assert len(record) > 255  # published as several strings, joined again


def test_a_record_too_long_for_a_udp_answer_is_fetched_whole(zone):
    key = _public_key(rsa.generate_private_key(public_exponent=65537, key_size=4096))
    record = f"v=DKIM1; k=rsa; p={key}"
    zone.txt(DKIM_NAME, record)

    dkim = check(zone, key)["DKIM"]

    assert (dkim.status, dkim.found) == ("ok", record)
    assert len(record) > 512


def test_whitespace_inside_the_published_key_is_ignored(zone, key):
    zone.txt(DKIM_NAME, f"v=DKIM1; k=rsa; p={key[:100]} {key[100:200]}\t{key[200:]}")

    assert check(zone, key)["DKIM"].status == "ok"


def test_a_record_without_the_optional_version_tag_still_matches(zone, key):
    zone.txt(DKIM_NAME, f"k=rsa; p={key}")

    assert check(zone, key)["DKIM"].status == "ok"


def test_an_ed25519_key_matches_and_is_advised_with_its_key_type(zone):
    key = _public_key(ed25519.Ed25519PrivateKey.generate())[-44:]  # the raw key, RFC 8463
    advice = check(zone, key)["DKIM"].advice
    assert f'"v=DKIM1; k=ed25519; p={key}"' in advice

    zone.txt(DKIM_NAME, f"v=DKIM1; k=ed25519; p={key}")
    assert check(zone, key)["DKIM"].status == "ok"


def test_no_record_at_the_selector_is_missing_and_says_what_to_publish(zone, key):
    zone.txt(DOMAIN, "v=spf1 -all")  # the domain exists; only the selector name does not

    dkim = check(zone, key)["DKIM"]

    assert (dkim.status, dkim.found) == ("missing", None)
    assert dkim.message == (
        "No DKIM record at portal202612._domainkey.example.com: publish the TXT record shown above."
    )
    assert (
        dkim.advice
        == f'Publish a TXT record at {DKIM_NAME} with the value "v=DKIM1; k=rsa; p={key}".'
    )


@pytest.mark.parametrize(
    ("published", "template"),
    [
        ("v=DKIM1; k=rsa; p={other}", dnscheck.DKIM_MISMATCH),
        ("v=DKIM1; k=rsa; p=", dnscheck.DKIM_REVOKED),
        ("v=spf1 include:_spf.example.net -all", dnscheck.DKIM_NOT_A_KEY),
        ("k=rsa; v=DKIM1; p={key}", dnscheck.DKIM_NOT_A_KEY),  # v= must come first
        ("v=DKIM2; p={key}", dnscheck.DKIM_NOT_A_KEY),
    ],
    ids=["another key", "revoked", "not dkim", "version not first", "unknown version"],
)
def test_a_published_record_that_is_not_this_key_is_a_mismatch(
    zone, key, other_key, published, template
):
    record = published.format(key=key, other=other_key)
    zone.txt(DKIM_NAME, record)

    dkim = check(zone, key)["DKIM"]

    assert (dkim.status, dkim.found) == ("mismatch", record)
    assert dkim.message == Sentence(template, name=DKIM_NAME, selector=SELECTOR)
    assert f"p={key}" in dkim.advice


def test_the_mismatch_message_names_the_selector_and_what_to_do(zone, key, other_key):
    zone.txt(DKIM_NAME, f"v=DKIM1; p={other_key}")

    assert check(zone, key)["DKIM"].message == (
        "The published DKIM key for selector portal202612 differs from this key: "
        "publish the record shown above, or wait for DNS to update."
    )


def test_one_matching_record_among_several_at_the_selector_is_ok(zone, key, other_key):
    zone.txt(DKIM_NAME, f"v=DKIM1; p={other_key}", f"v=DKIM1; p={key}")

    assert check(zone, key)["DKIM"].status == "ok"


def test_without_a_generated_key_nothing_is_looked_up_for_dkim(zone):
    dkim = check(zone, None, selector=None)["DKIM"]

    assert (dkim.status, dkim.found) == ("missing", None)
    assert dkim.message == Sentence(dnscheck.DKIM_NO_KEY, domain=DOMAIN)
    assert not [name for name, _ in zone.asked if "_domainkey" in name]


# Errors: a lookup that fails says so, and the other records are still checked.


def test_a_nameserver_that_never_answers_gives_errors_within_the_timeout(key):
    with silent_dns_server() as port:
        resolver = DnsPythonResolver.at("127.0.0.1", port, timeout=1.0)
        started = time.monotonic()
        arguments = {"selector": SELECTOR, "public_key": key, "relay_host": RELAY}
        findings = check_domain(DOMAIN, **arguments, resolver=resolver, timeout=1.0)
        elapsed = time.monotonic() - started

    assert [(f.record, f.status, f.found) for f in findings] == [
        ("DKIM", "error", None),
        ("SPF", "error", None),
        ("DMARC", "error", None),
    ]
    assert elapsed < 1.8
    assert findings[0].message.startswith(f"The DKIM record at {DKIM_NAME} could not be looked up")
    assert findings[0].message.endswith("check again later.")


def test_servfail_for_the_selector_is_an_error_while_spf_and_dmarc_are_checked(zone, key):
    zone.servfail(DKIM_NAME)
    zone.txt(DOMAIN, f"v=spf1 ip4:{RELAY_IP} -all")
    zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject")

    findings = check(zone, key)

    assert findings["DKIM"].status == "error"
    assert "could not be looked up (the nameservers failed" in findings["DKIM"].message
    assert (findings["SPF"].status, findings["DMARC"].status) == ("ok", "ok")


# SPF


@pytest.mark.parametrize(
    "records",
    [
        {DOMAIN: "v=spf1 ip4:203.0.113.0/24 -all"},
        {DOMAIN: f"v=spf1 ip4:{RELAY_IP} ~all"},
        {
            DOMAIN: "v=spf1 include:_spf.example.net -all",
            "_spf.example.net": "v=spf1 ip4:198.51.100.0/24 include:relays.example.org ~all",
            "relays.example.org": "v=spf1 ip4:203.0.113.0/28 -all",
        },
        {DOMAIN: f"v=spf1 a:{RELAY} -all"},
        {DOMAIN: "v=spf1 a:relay-pool.example/24 -all"},
        {DOMAIN: "v=spf1 mx -all"},
        {
            DOMAIN: "v=spf1 redirect=_spf.example.net",
            "_spf.example.net": "v=spf1 a:smtp.relay.example -all",
        },
    ],
    ids=["ip4 network", "ip4 address", "nested include", "a", "a with cidr", "mx", "redirect"],
)
def test_spf_that_covers_the_relay_is_ok(zone, key, records):
    zone.a("relay-pool.example", "203.0.113.200")
    zone.mx(DOMAIN, "mx1.example.com", RELAY)
    zone.a("mx1.example.com", "198.51.100.25")
    for name, record in records.items():
        zone.txt(name, record)

    spf = check(zone, key)["SPF"]

    assert (spf.status, spf.found, spf.advice) == ("ok", records[DOMAIN], None)
    assert spf.message == f"SPF for example.com covers the relay {RELAY_LABEL}."


def test_spf_that_does_not_cover_the_relay_is_a_mismatch_with_the_term_to_add(zone, key):
    record = "v=spf1 include:_spf.example.net -all"
    zone.txt(DOMAIN, "google-site-verification=abc", record)
    zone.txt("_spf.example.net", "v=spf1 ip4:198.51.100.0/24 -all")

    spf = check(zone, key)["SPF"]

    assert (spf.status, spf.found) == ("mismatch", record)
    assert spf.message == (
        "SPF for example.com does not cover the relay smtp.relay.example (203.0.113.7): "
        "add ip4:203.0.113.7, or the include: your mail provider documents, to the record."
    )
    assert spf.advice == (
        "Publish a TXT record at example.com with the value "
        '"v=spf1 include:_spf.example.net ip4:203.0.113.7 -all".'
    )


def test_no_spf_record_is_missing_and_suggests_one_for_the_relay(zone, key):
    zone.txt(DOMAIN, "google-site-verification=abc")

    spf = check(zone, key)["SPF"]

    assert (spf.status, spf.found) == ("missing", None)
    assert spf.message == Sentence(dnscheck.SPF_MISSING, domain=DOMAIN, relay=RELAY_LABEL)
    assert '"v=spf1 ip4:203.0.113.7 ~all"' in spf.advice


@pytest.mark.parametrize(
    ("record", "template", "term", "advised"),
    [
        ("v=spf1 +all", dnscheck.SPF_ANYONE, "+all", '"v=spf1 ~all"'),
        ("v=spf1 ip4:203.0.113.7 all", dnscheck.SPF_ANYONE, "all", '"v=spf1 ip4:203.0.113.7 ~all"'),
        ("v=spf1 ip4:0.0.0.0/0 -all", dnscheck.SPF_ANYONE, "ip4:0.0.0.0/0", "Remove ip4:0.0.0.0/0"),
        (
            "v=spf1 a:smtp.relay.example ?all",
            dnscheck.SPF_NEUTRAL,
            "?all",
            "a:smtp.relay.example ~all",
        ),
        (
            "v=spf1 a:smtp.relay.example",
            dnscheck.SPF_NEUTRAL,
            "no all term",
            "a:smtp.relay.example ~all",
        ),
    ],
    ids=["+all", "bare all", "the whole internet", "?all", "no all"],
)
def test_spf_that_lets_other_servers_pass_or_stay_neutral_is_weak(
    zone, key, record, template, term, advised
):
    zone.txt(DOMAIN, record)

    spf = check(zone, key)["SPF"]

    assert (spf.status, spf.found) == ("weak", record)
    assert spf.message == Sentence(template, domain=DOMAIN, term=term)
    assert advised in spf.advice


def test_the_plus_all_message_says_any_server_may_send(zone, key):
    zone.txt(DOMAIN, "v=spf1 +all")

    assert check(zone, key)["SPF"].message == (
        "SPF for example.com lets any server send as example.com (+all): end it with ~all or -all."
    )


def test_given_relay_addresses_are_checked_without_resolving_the_relay(zone, key):
    zone.txt(DOMAIN, "v=spf1 ip6:2001:db8:25::/48 -all")

    spf = check(zone, key, relay_addresses=["2001:db8:25::7"])["SPF"]

    assert spf.status == "ok"
    assert spf.message == f"SPF for example.com covers the relay {RELAY} (2001:db8:25::7)."
    assert (RELAY, "A") not in zone.asked


def test_every_relay_address_must_be_covered(zone, key):
    zone.txt(DOMAIN, f"v=spf1 ip4:{RELAY_IP} -all")

    spf = check(zone, key, relay_addresses=[RELAY_IP, "2001:db8:25::7"])["SPF"]

    assert spf.status == "mismatch"
    assert "add ip6:2001:db8:25::7," in spf.message


@pytest.mark.parametrize(
    ("records", "template", "status"),
    [
        (
            {DOMAIN: ["v=spf1 -all", f"v=spf1 ip4:{RELAY_IP} -all"]},
            dnscheck.SPF_SEVERAL,
            "mismatch",
        ),
        (
            {DOMAIN: ["v=spf1 include:nospf.example -all"], "nospf.example": ["x"]},
            dnscheck.SPF_BROKEN,
            "mismatch",
        ),
        ({DOMAIN: ["v=spf1 include:down.example -all"]}, dnscheck.SPF_ERROR, "error"),
    ],
    ids=["two records", "include without spf", "include whose server fails"],
)
def test_spf_that_cannot_be_evaluated_says_why(zone, key, records, template, status):
    zone.servfail("down.example")
    for name, texts in records.items():
        zone.txt(name, *texts)

    spf = check(zone, key)["SPF"]

    assert spf.status == status
    prefix = template.split("%(reason)s")[0] % {"domain": DOMAIN, "count": 2}
    assert spf.message.startswith(prefix.split("(")[0])


def test_spf_without_a_relay_to_check_against_is_not_judged(zone, key):
    zone.txt(DOMAIN, "v=spf1 -all")

    spf = check(zone, key, relay_host=None)["SPF"]

    assert (spf.status, spf.found) == ("error", "v=spf1 -all")
    assert spf.message == Sentence(dnscheck.SPF_NO_RELAY, domain=DOMAIN)


def test_a_relay_that_does_not_resolve_is_reported_as_such(zone, key):
    zone.txt(DOMAIN, "v=spf1 -all")

    spf = check(zone, key, relay_host="gone.relay.example")["SPF"]

    assert spf.status == "error"
    assert spf.message == Sentence(
        dnscheck.SPF_UNRESOLVED, domain=DOMAIN, relay="gone.relay.example"
    )


# DMARC


SUB = "news.example.com"
OTHER = "other.example"


@pytest.mark.parametrize(
    ("from_domain", "record", "status", "template"),
    [
        (DOMAIN, "v=DMARC1; p=reject", "ok", dnscheck.DMARC_OK),
        (SUB, "v=DMARC1; p=quarantine", "ok", dnscheck.DMARC_OK),
        (OTHER, "v=DMARC1; p=reject", "mismatch", dnscheck.DMARC_MISALIGNED),
        (OTHER, "v=DMARC1; p=quarantine", "mismatch", dnscheck.DMARC_MISALIGNED),
        (SUB, "v=DMARC1; p=reject; adkim=s", "mismatch", dnscheck.DMARC_MISALIGNED),
        (DOMAIN, "v=DMARC1; p=none; rua=mailto:d@example.com", "weak", dnscheck.DMARC_MONITOR),
        (OTHER, "v=DMARC1; p=none", "weak", dnscheck.DMARC_MONITOR_MISALIGNED),
        (DOMAIN, "v=DMARC1; p=maybe", "mismatch", dnscheck.DMARC_INVALID),
    ],
    ids=[
        "reject aligned",
        "subdomain from relaxed",
        "reject misaligned",
        "quarantine misaligned",
        "strict alignment",
        "none",
        "none misaligned",
        "no valid policy",
    ],
)
def test_dmarc_verdicts(zone, key, from_domain, record, status, template):
    zone.txt(f"_dmarc.{from_domain}", record)

    dmarc = check(zone, key, from_domain=from_domain)["DMARC"]

    assert (dmarc.status, dmarc.found) == (status, record)
    policy = record.split("p=")[1].split(";")[0]
    words = {"owner": from_domain, "from_domain": from_domain, "domain": DOMAIN, "policy": policy}
    assert dmarc.message == Sentence(template, **words, name=f"_dmarc.{from_domain}")
    assert (dmarc.advice is None) == (status == "ok" or template is dnscheck.DMARC_INVALID)


def test_dmarc_reject_with_a_misaligned_from_says_how_to_align(zone, key):
    zone.txt("_dmarc.other.example", "v=DMARC1; p=reject")

    dmarc = check(zone, key, from_domain="other.example")["DMARC"]

    assert dmarc.message == (
        "DMARC for other.example asks receivers to reject mail whose From is not aligned: "
        "other.example is not aligned with the signing domain example.com, so sign with a key "
        "for other.example or send from an address at example.com."
    )
    assert (
        dmarc.advice == "Sign with a key for other.example, or send from an address at example.com."
    )


def test_no_dmarc_record_is_missing_and_suggests_monitoring_first(zone, key):
    zone.txt(f"_dmarc.{DOMAIN}", "some unrelated text")

    dmarc = check(zone, key)["DMARC"]

    assert (dmarc.status, dmarc.found) == ("missing", None)
    assert (
        dmarc.message == "No DMARC record at _dmarc.example.com: publish one, starting with p=none."
    )
    assert (
        dmarc.advice
        == 'Publish a TXT record at _dmarc.example.com with the value "v=DMARC1; p=none".'
    )


def test_a_subdomain_from_falls_back_to_the_organizational_record_and_its_sp(zone, key):
    zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject; sp=none")

    dmarc = check(zone, key, from_domain="news.example.com")["DMARC"]

    assert (dmarc.status, dmarc.found) == ("weak", "v=DMARC1; p=reject; sp=none")
    assert dmarc.message.startswith("DMARC for example.com only monitors (p=none)")
    assert dmarc.advice == (
        "Publish a TXT record at _dmarc.example.com with the value "
        '"v=DMARC1; p=reject; sp=quarantine".'
    )


def test_alignment_uses_the_public_suffix_list_not_the_last_two_labels(zone, key):
    zone.txt("_dmarc.shop.co.uk", "v=DMARC1; p=reject")
    zone.txt("_dmarc.mail.example.co.uk", "v=DMARC1; p=reject")

    misaligned = check(zone, key, domain="example.co.uk", from_domain="shop.co.uk")["DMARC"]
    aligned = check(zone, key, domain="example.co.uk", from_domain="mail.example.co.uk")["DMARC"]

    assert (misaligned.status, aligned.status) == ("mismatch", "ok")


def test_every_verdict_has_its_own_message():
    templates = [
        v for k, v in vars(dnscheck).items() if k.split("_")[0] in ("DKIM", "SPF", "DMARC")
    ]

    assert len(templates) == len(set(templates)) > 20
