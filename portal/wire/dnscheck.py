"""Check a sender domain's published DKIM, SPF and DMARC records, and say what to change."""

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from portal.wire.dnslookup import (
    DEFAULT_DNS_TIMEOUT,
    CachedLookups,
    DnsLookupError,
    DnsPythonResolver,
    DnsResolver,
)
from portal.wire.dnsrecords import (
    canonical_address,
    dmarc_records,
    domain_name,
    ip_term,
    is_dkim,
    key_length,
    organizational_domain,
    relay_label,
    tag_list,
    with_terms,
)
from portal.wire.sentence import N_, Sentence
from portal.wire.spf import check_host, spf_records

__all__ = [
    "DnsLookupError",
    "DnsPythonResolver",
    "DnsResolver",
    "Finding",
    "Sentence",
    "check_domain",
]


DKIM_OK = N_("The DKIM record at %(name)s matches this key.")
DKIM_NO_KEY = N_("There is no DKIM key for %(domain)s yet: generate one, then publish its record.")
DKIM_MISSING = N_("No DKIM record at %(name)s: publish the TXT record shown above.")
DKIM_MISMATCH = N_(
    "The published DKIM key for selector %(selector)s differs from this key: "
    "publish the record shown above, or wait for DNS to update."
)
DKIM_REVOKED = N_(
    "The DKIM record at %(name)s has an empty key (revoked): publish the record shown above."
)
DKIM_NOT_A_KEY = N_(
    "The TXT record at %(name)s holds no DKIM key: replace it with the record shown above."
)
DKIM_ERROR = N_(
    "The DKIM record at %(name)s could not be looked up (%(reason)s): check again later."
)

SPF_OK = N_("SPF for %(domain)s covers the relay %(relay)s.")
SPF_MISSING = N_("No SPF record for %(domain)s: publish one that covers the relay %(relay)s.")
SPF_NOT_COVERED = N_(
    "SPF for %(domain)s does not cover the relay %(relay)s: add %(terms)s, "
    "or the include: your mail provider documents, to the record."
)
SPF_ANYONE = N_(
    "SPF for %(domain)s lets any server send as %(domain)s (%(term)s): end it with ~all or -all."
)
SPF_NEUTRAL = N_(
    "SPF for %(domain)s says nothing about other servers (%(term)s): end it with ~all or -all."
)
SPF_SEVERAL = N_(
    "%(domain)s has %(count)s SPF records, which receivers treat as an error: merge them."
)
SPF_BROKEN = N_("SPF for %(domain)s cannot be evaluated (%(reason)s): fix the record.")
SPF_NO_RELAY = N_("SPF for %(domain)s was not checked: no relay is configured to check it against.")
SPF_UNRESOLVED = N_(
    "SPF for %(domain)s was not checked: the relay %(relay)s has no address in DNS."
)
SPF_RELAY_ERROR = N_(
    "SPF for %(domain)s was not checked: the relay %(relay)s could not be looked up (%(reason)s)."
)
SPF_ERROR = N_("SPF for %(domain)s could not be looked up (%(reason)s): check again later.")

DMARC_OK = N_(
    "DMARC for %(owner)s has policy p=%(policy)s, and the From domain %(from_domain)s is aligned "
    "with the signing domain %(domain)s."
)
DMARC_MISSING = N_("No DMARC record at _dmarc.%(from_domain)s: publish one, starting with p=none.")
DMARC_MONITOR = N_(
    "DMARC for %(owner)s only monitors (p=none), so receivers act on no failure: "
    "move to p=quarantine once its reports show your mail passes."
)
DMARC_MONITOR_MISALIGNED = N_(
    "DMARC for %(owner)s only monitors (p=none), and the From domain %(from_domain)s is not "
    "aligned with the signing domain %(domain)s: sign with a key for %(from_domain)s before "
    "tightening it."
)
DMARC_MISALIGNED = N_(
    "DMARC for %(owner)s asks receivers to %(policy)s mail whose From is not aligned: "
    "%(from_domain)s is not aligned with the signing domain %(domain)s, so sign with a key for "
    "%(from_domain)s or send from an address at %(domain)s."
)
DMARC_INVALID = N_(
    "The DMARC record at %(name)s has no valid policy (p=none, quarantine or reject): fix it."
)
DMARC_SEVERAL = N_("%(name)s holds %(count)s DMARC records, which receivers ignore: keep only one.")
DMARC_ERROR = N_(
    "The DMARC record at %(name)s could not be looked up (%(reason)s): check again later."
)

DMARC_ALIGN = N_("Sign with a key for %(from_domain)s, or send from an address at %(domain)s.")
PUBLISH = N_('Publish a TXT record at %(name)s with the value "%(value)s".')
REMOVE = N_("Remove %(term)s from the SPF record of %(domain)s.")

# Addresses no relay uses (RFC 5737, RFC 3849): if SPF lets them pass, it lets anyone pass.
_STRANGERS = {4: "192.0.2.1", 6: "2001:db8::1"}
_DMARC_POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class Finding:
    """The verdict on one record; `found` is the record as published."""

    record: str  # "DKIM", "SPF" or "DMARC"
    status: str  # "ok", "missing", "mismatch", "weak" or "error"
    found: str | None  # the record as published (TXT strings joined), None when there is none
    message: str  # one plain-language sentence: the verdict (a Sentence, for the page)
    advice: str | None  # what to publish or change, None when nothing


def check_domain(
    domain: str,
    *,
    selector: str | None,
    public_key: str | None,
    relay_host: str | None,
    relay_addresses: Sequence[str] = (),
    from_domain: str | None = None,
    resolver: DnsResolver | None = None,
    timeout: float = DEFAULT_DNS_TIMEOUT,
) -> list[Finding]:
    """DKIM, SPF and DMARC findings for `domain`, in that order; all lookups share `timeout`."""
    domain = domain_name(domain)
    lookups = CachedLookups(resolver or DnsPythonResolver(timeout), timeout)
    return [
        _dkim(lookups, domain, selector, public_key),
        _spf(lookups, domain, relay_host, relay_addresses),
        _dmarc(lookups, domain, domain_name(from_domain or domain)),
    ]


def _dkim(lookups: CachedLookups, domain: str, selector: str | None, key: str | None) -> Finding:
    if not selector or not key:
        return Finding("DKIM", "missing", None, Sentence(DKIM_NO_KEY, domain=domain), None)
    name = f"{selector}._domainkey.{domain}"
    key = re.sub(r"\s", "", key)
    kind = "ed25519" if key_length(key) == 32 else "rsa"
    advice = Sentence(PUBLISH, name=name, value=f"v=DKIM1; k={kind}; p={key}")
    try:
        records = lookups.txt(name)
    except DnsLookupError as exc:
        return Finding("DKIM", "error", None, Sentence(DKIM_ERROR, name=name, reason=exc), None)
    found = "\n".join(records) or None
    keys = [tags.get("p") for tags in map(tag_list, records) if is_dkim(tags)]
    if not records:
        return Finding("DKIM", "missing", None, Sentence(DKIM_MISSING, name=name), advice)
    if any(p is not None and re.sub(r"\s", "", p) == key for p in keys):
        return Finding("DKIM", "ok", found, Sentence(DKIM_OK, name=name), None)
    if keys and all(p is not None and not p.strip() for p in keys):
        return Finding("DKIM", "mismatch", found, Sentence(DKIM_REVOKED, name=name), advice)
    if any(keys):
        message = Sentence(DKIM_MISMATCH, selector=selector, name=name)
        return Finding("DKIM", "mismatch", found, message, advice)
    return Finding("DKIM", "mismatch", found, Sentence(DKIM_NOT_A_KEY, name=name), advice)


def _spf(
    lookups: CachedLookups, domain: str, relay_host: str | None, relay_addresses: Sequence[str]
) -> Finding:
    try:
        records = spf_records(lookups.txt(domain))
    except DnsLookupError as exc:
        return Finding("SPF", "error", None, Sentence(SPF_ERROR, domain=domain, reason=exc), None)
    found = "\n".join(records) or None
    try:
        addresses = _relay_addresses(lookups, relay_host, relay_addresses)
    except DnsLookupError as exc:
        message = Sentence(SPF_RELAY_ERROR, domain=domain, relay=relay_host, reason=exc)
        return Finding("SPF", "error", found, message, None)
    words = {"domain": domain, "relay": relay_label(relay_host, addresses)}
    terms = [ip_term(a) for a in addresses] or ([f"a:{relay_host}"] if relay_host else [])
    if not records:
        advice = Sentence(PUBLISH, name=domain, value=" ".join(["v=spf1", *terms, "~all"]))
        return Finding("SPF", "missing", None, Sentence(SPF_MISSING, **words), advice)
    if len(records) > 1:
        message = Sentence(SPF_SEVERAL, domain=domain, count=len(records))
        return Finding("SPF", "mismatch", found, message, None)
    if not addresses:
        template = SPF_UNRESOLVED if relay_host else SPF_NO_RELAY
        return Finding("SPF", "error", found, Sentence(template, **words), None)
    results = {address: check_host(address, domain, lookups) for address in addresses}
    for result in results.values():
        if result.result == "temperror":
            message = Sentence(SPF_ERROR, domain=domain, reason=result.reason)
            return Finding("SPF", "error", found, message, None)
        if result.result == "permerror":
            message = Sentence(SPF_BROKEN, domain=domain, reason=result.reason)
            return Finding("SPF", "mismatch", found, message, None)
    uncovered = [ip_term(a) for a, result in results.items() if result.result != "pass"]
    if uncovered:
        message = Sentence(SPF_NOT_COVERED, **words, terms=" ".join(uncovered))
        advice = Sentence(PUBLISH, name=domain, value=with_terms(records[0], uncovered))
        return Finding("SPF", "mismatch", found, message, advice)
    return _spf_strength(lookups, domain, records[0], addresses, words["relay"])


def _spf_strength(
    lookups: CachedLookups, domain: str, record: str, addresses: list[str], relay: str
) -> Finding:
    """Covered: "weak" when a server that is no relay passes too, or is left neutral."""
    version = ipaddress.ip_address(addresses[0]).version
    stranger = check_host(_STRANGERS[version], domain, lookups)
    term = stranger.term or Sentence(N_("no all term"))
    if stranger.result not in ("pass", "neutral"):
        return Finding("SPF", "ok", record, Sentence(SPF_OK, domain=domain, relay=relay), None)
    template = SPF_ANYONE if stranger.result == "pass" else SPF_NEUTRAL
    if re.fullmatch(r"[+?]?all", term, re.I) or stranger.term is None:
        kept = [t for t in record.split() if not re.fullmatch(r"[+?]?all", t, re.I)]
        advice = Sentence(PUBLISH, name=domain, value=" ".join([*kept, "~all"]))
    else:
        advice = Sentence(REMOVE, term=term, domain=domain)
    return Finding("SPF", "weak", record, Sentence(template, domain=domain, term=term), advice)


def _dmarc(lookups: CachedLookups, domain: str, from_domain: str) -> Finding:
    name, owner = f"_dmarc.{from_domain}", from_domain
    org = organizational_domain(from_domain)
    try:
        records = dmarc_records(lookups.txt(name))
        if not records and org != from_domain:  # RFC 7489 6.6.3: fall back to the org domain
            name, owner = f"_dmarc.{org}", org
            records = dmarc_records(lookups.txt(name))
    except DnsLookupError as exc:
        return Finding("DMARC", "error", None, Sentence(DMARC_ERROR, name=name, reason=exc), None)
    found = "\n".join(records) or None
    if not records:
        message = Sentence(DMARC_MISSING, from_domain=from_domain)
        advice = Sentence(PUBLISH, name=f"_dmarc.{from_domain}", value="v=DMARC1; p=none")
        return Finding("DMARC", "missing", None, message, advice)
    if len(records) > 1:
        message = Sentence(DMARC_SEVERAL, name=name, count=len(records))
        return Finding("DMARC", "mismatch", found, message, None)
    tags = {k.lower(): v.lower() for k, v in tag_list(records[0]).items()}
    tag = "sp" if owner != from_domain and "sp" in tags else "p"  # sp= rules subdomains
    policy = tags.get(tag)
    if policy not in _DMARC_POLICIES:
        return Finding("DMARC", "mismatch", found, Sentence(DMARC_INVALID, name=name), None)
    strict = tags.get("adkim") == "s"
    aligned = domain == from_domain if strict else org == organizational_domain(domain)
    words = {"owner": owner, "policy": policy, "from_domain": from_domain, "domain": domain}
    if policy == "none":
        template = DMARC_MONITOR if aligned else DMARC_MONITOR_MISALIGNED
        stricter = re.sub(rf"(?i)(?<![a-z]){tag}\s*=\s*none", f"{tag}=quarantine", records[0])
        advice = (
            Sentence(PUBLISH, name=name, value=stricter)
            if aligned
            else Sentence(DMARC_ALIGN, **words)
        )
        return Finding("DMARC", "weak", found, Sentence(template, **words), advice)
    if not aligned:
        message = Sentence(DMARC_MISALIGNED, **words)
        return Finding("DMARC", "mismatch", found, message, Sentence(DMARC_ALIGN, **words))
    return Finding("DMARC", "ok", found, Sentence(DMARC_OK, **words), None)


def _relay_addresses(
    lookups: CachedLookups, relay_host: str | None, given: Sequence[str]
) -> list[str]:
    """The relay's addresses: those given, the host itself if it is one, or its A/AAAA."""
    if given:
        return [a for a in map(canonical_address, given) if a]
    if not relay_host:
        return []
    literal = canonical_address(relay_host)
    return [literal] if literal else lookups.addresses(domain_name(relay_host))
