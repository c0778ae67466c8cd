"""Real DNS servers on loopback for the domain checks: an authoritative one and a silent one."""

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from portal.wire.dnslookup import DnsPythonResolver

HOST = "127.0.0.1"
TXT_CHUNK = 255  # the longest string one TXT record can hold; longer values are split


@dataclass
class Zone(BaseResolver):
    """The records a test publishes; answers NXDOMAIN for names it never mentioned."""

    port: int = 0
    records: dict[tuple[str, str], list[RR]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def txt(self, name: str, *values: str) -> "Zone":
        """Publish one TXT record per value, split into 255-byte strings as DNS hosts do."""
        for value in values:
            chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
            self._add(name, "TXT", TXT(chunks))
        return self

    def a(self, name: str, *addresses: str) -> "Zone":
        """Publish A or AAAA records, by each address's family."""
        for address in addresses:
            v6 = ipaddress.ip_address(address).version == 6
            self._add(name, "AAAA" if v6 else "A", AAAA(address) if v6 else A(address))
        return self

    def mx(self, name: str, *hosts: str) -> "Zone":
        """Publish MX records, the first host most preferred."""
        for preference, host in enumerate(hosts, start=1):
            self._add(name, "MX", MX(host, preference * 10))
        return self

    def servfail(self, name: str) -> "Zone":
        """Answer SERVFAIL for name, as a broken authoritative server does."""
        self.failing.add(name.lower())
        return self

    def resolver(self, timeout: float = 1.0) -> DnsPythonResolver:
        """The portal's resolver, asking only this server."""
        return DnsPythonResolver.at(HOST, self.port, timeout=timeout)

    def _add(self, name: str, rtype: str, rdata) -> None:
        key = (name.lower(), rtype)
        self.records.setdefault(key, []).append(RR(name, getattr(QTYPE, rtype), rdata=rdata))

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        rtype = QTYPE[request.q.qtype]
        self.asked.append((name, rtype))
        if name in self.failing:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for record in self.records.get((name, rtype), []):
            reply.add_answer(record)
        if not reply.rr and not any(known == name for known, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        if handler.protocol == "udp":  # as real servers do: too long for UDP, ask again by TCP
            limit = next((rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT), 512)
            if len(reply.pack()) > limit:
                reply = request.reply()  # the question kept: clients drop answers without it
                reply.header.tc = 1
        return reply


@contextlib.contextmanager
def dns_server() -> Iterator[Zone]:
    """An authoritative server for the Zone it yields, over UDP and TCP on one loopback port."""
    zone = Zone()
    udp, tcp = _bound_pair(zone)
    # A short poll interval: shutdown() waits for it, once per test.
    threads = [
        threading.Thread(target=s.server.serve_forever, args=(0.02,), daemon=True)
        for s in (udp, tcp)
    ]
    for thread in threads:
        thread.start()
    try:
        yield zone
    finally:
        for server, thread in zip((udp, tcp), threads, strict=True):
            server.server.shutdown()
            server.server.server_close()
            thread.join()


def _bound_pair(zone: Zone, tries: int = 20) -> tuple[DNSServer, DNSServer]:
    """UDP and TCP servers on one free port: a free UDP port's TCP twin may be taken."""
    quiet = DNSLogger(logf=lambda _line: None)
    for _ in range(tries):
        udp = DNSServer(zone, address=HOST, port=0, logger=quiet)
        zone.port = udp.server.server_address[1]
        try:
            return udp, DNSServer(zone, address=HOST, port=zone.port, tcp=True, logger=quiet)
        except OSError:
            udp.server.server_close()
    raise OSError(f"no port free for both UDP and TCP after {tries} tries")


@contextlib.contextmanager
def silent_dns_server() -> Iterator[int]:
    """The port of a UDP socket on loopback that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]
