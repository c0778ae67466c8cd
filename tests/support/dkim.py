"""DKIM as a receiver sees it: the records an admin published, read off the page that shows them."""

import html
import re
from dataclasses import dataclass, field

from portal.web.dkim import RESOLVER

RECORD = re.compile(
    r'id="dkim-name-(\d+)">([^<]+)</code>.*?id="dkim-value-\1">([^<]+)</code>', re.S
)
KEY_ROW = re.compile(r'<tr id="dkim-key-(\d+)" class="dkim-key state-([a-z]+)')


@dataclass
class PublishedDns:
    """The TXT records as published: a DnsResolver for the check and a dnsfunc for dkim.verify."""

    records: dict[str, list[str]] = field(default_factory=dict)

    def publish(self, name: str, value: str) -> None:
        self.records.setdefault(name.lower().rstrip("."), []).append(value)

    def txt(self, name: str) -> list[str]:
        return list(self.records.get(name.lower().rstrip("."), []))

    def dnsfunc(self, name: bytes, timeout: float = 5) -> bytes | None:
        found = self.txt(name.decode())
        return found[0].encode() if found else None

    def serve(self, app) -> "PublishedDns":
        """The app's Check DNS asks these records."""
        app.extensions[RESOLVER] = self
        return self


def shown_records(page: str) -> dict[int, tuple[str, str]]:
    """key id -> (TXT name, TXT value) as the DKIM section shows them."""
    return {int(i): (html.unescape(n), html.unescape(v)) for i, n, v in RECORD.findall(page)}


def key_states(page: str) -> dict[int, str]:
    """key id -> state, as the DKIM section lists them."""
    return {int(i): state for i, state in KEY_ROW.findall(page)}


def dkim_base(company=None) -> str:
    return "/settings/mail/dkim" if company is None else f"/companies/{company.id}/email/dkim"


def publish_and_activate(client, dns: PublishedDns, domain: str, selector: str, company=None):
    """As an admin: generate a key, publish the record shown, check DNS, activate; the record."""
    base = dkim_base(company)
    made = client.post(base, {"dkim_domain": domain, "dkim_selector": selector}, htmx=True)
    assert made.status_code == 200, made.text
    (key_id,) = [
        i for i, (name, _) in shown_records(made.text).items() if name.startswith(f"{selector}.")
    ]
    name, value = shown_records(made.text)[key_id]
    dns.publish(name, value)
    checked = client.post(f"{base}/{key_id}/check", {}, htmx=True)
    assert checked.status_code == 200, checked.text
    activated = client.post(f"{base}/{key_id}/activate", {}, htmx=True)
    assert activated.status_code == 200, activated.text
    assert key_states(activated.text)[key_id] == "active"
    return key_id, name, value
