"""The portal's Prometheus metrics: declared once, counted where things happen, read by a scrape.

Counters and histograms live in prometheus-client's default registry. With
PROMETHEUS_MULTIPROC_DIR set in the environment before the process starts, every process
(gunicorn's workers, each worker.py process) writes its values to files there, and a scrape
adds up the files of every process on the host (prometheus-client's multiprocess mode).
Labels never carry credentials or raw paths: a lane's server is `host:port`, an HTTP
request's endpoint is Flask's endpoint name.
"""

import hmac
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

DELIVERIES = Counter(
    "portal_deliveries",
    "Delivery outcomes committed by the workers, by outcome (the mail's new status) and server.",
    ["outcome", "server"],
)
SMTP_SESSION_SECONDS = Histogram(
    "portal_smtp_session_seconds",
    "How long one SMTP connection of the delivery worker lasted, from opening to goodbye.",
    ["server"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TOKEN_REFRESH_FAILURES = Counter(
    "portal_token_refresh_failures",
    "Failed OAuth2 token refreshes: `refused` (an OAuth2 error answer) or `error` (no answer).",
    ["reason"],
)
CONNECTION_TESTS = Counter(
    "portal_connection_tests",
    "Test connection runs, by result: `ok`, or the step that failed.",
    ["result"],
)
RATE_LIMITED = Counter(
    "portal_rate_limited",
    "Requests answered 429, by the limit's scope (the limited endpoint, or a shared scope).",
    ["scope"],
)
HTTP_REQUESTS = Counter(
    "portal_http_requests",
    "HTTP requests answered, by Flask endpoint (`unmatched` for no route) and status code.",
    ["endpoint", "status"],
)


def count_deliveries(server: str, outcomes: Iterable[str]) -> None:
    """Count committed outcomes (one status each) for a lane's server."""
    for outcome in outcomes:
        DELIVERIES.labels(outcome=outcome, server=server).inc()


class _Registered(Collector):
    """This process's own metrics (the default registry), passed through to one scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(multiproc_dir: str | None, extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape answers: every process's files under `multiproc_dir`, else this one's.

    `extra` collectors (the outbox's gauges, computed from the database) are added to it.
    A fresh registry per scrape, so collectors bound to one app never outlive its request.
    """
    registry = CollectorRegistry(auto_describe=True)
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Registered())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


def wsgi_app(multiproc_dir: str, token: str | None) -> Callable:
    """A WSGI app answering every GET with this host's process files, behind the bearer token.

    For `portal metrics-server` on a host that runs workers and no web.
    """

    def serve(environ: dict, start_response: Callable) -> list[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "")
        if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b"A bearer token is required.\n"]
        body = exposition(multiproc_dir)
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
        return [body]

    return serve
