"""Probes and scrapes: /healthz (the process answers), /readyz (its database and Redis), /metrics.

The three answer whatever `Host` a request names (load balancers and Prometheus ask by
address), build no link, set no cookie and are exempt from the rate limits. /metrics is
guarded by METRICS_TOKEN and/or METRICS_ALLOW_NETWORKS (see `_guard`).
"""

import hmac
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from portal import metrics
from portal.config import PRODUCTION
from portal.extensions import limiter
from portal.outbox.gauges import OutboxCollector
from portal.web import readiness

bp = Blueprint("health", __name__)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@bp.get("/healthz")
def healthz():
    """200 while the process answers: no database, no Redis, no login."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz():
    """200 when the database and Redis answer, else 503 naming what failed."""
    app = current_app._get_current_object()
    checks = {
        "database": "ok" if readiness.database_ok(app) else "fail",
        "redis": "ok" if readiness.redis_ok(app) else "fail",
    }
    failing = [name for name, state in checks.items() if state != "ok"]
    redis_up = checks["redis"] == "ok"  # else each would wait out the timeout again
    body = {
        "status": "fail" if failing else "ok",
        "checks": checks,
        "failing": failing,
        # Shown, never failing readiness: the web takes mail into the outbox without workers.
        "workers": readiness.workers(app) if redis_up else readiness.UNKNOWN,
        "sweeper": readiness.sweeper(app) if redis_up else readiness.UNKNOWN,
    }
    return jsonify(body), 503 if failing else 200


@bp.get("/metrics")
def scrape():
    """The Prometheus text format: every process's counters on this host, the outbox's gauges."""
    _guard()
    body = metrics.exposition(current_app.config["PROMETHEUS_MULTIPROC_DIR"], [OutboxCollector()])
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-store"})


def _guard() -> None:
    """Refuse the scrape unless the configured token and/or networks admit it.

    With neither configured: 404 in production, and loopback only in development.
    """
    config = current_app.config
    token, networks = config["METRICS_TOKEN"], config["METRICS_ALLOW_NETWORKS"]
    client = _client_address()
    if not token and not networks:
        if config["PORTAL_ENV"] == PRODUCTION or client is None or not client.is_loopback:
            abort(404)
        return
    if networks and (client is None or not any(client in network for network in networks)):
        abort(403)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            abort(Response("A bearer token is required.\n", 401, {"WWW-Authenticate": "Bearer"}))


def _client_address() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address (the proxy's, unless PORTAL_PROXY_COUNT); None over a Unix socket."""
    try:
        return ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None


def parse_networks(value: str | list[Network] | None) -> list[Network]:
    """METRICS_ALLOW_NETWORKS: comma-separated CIDRs (a bare address is one host)."""
    if not isinstance(value, str):
        return list(value or [])
    try:
        return [ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise RuntimeError(f"METRICS_ALLOW_NETWORKS: {exc}") from exc


class _AnyHost:
    """WSGI: the probe paths are answered as if asked for the base URL's host.

    Flask refuses an untrusted Host while routing, before any view could be exempted, so
    the probes' Host is set here; these views build no link from it, so nothing trusts it.
    """

    def __init__(self, wsgi_app, host: str):
        self.wsgi_app, self.host = wsgi_app, host

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") in PROBE_PATHS:
            environ["HTTP_HOST"] = self.host
            environ.pop("HTTP_X_FORWARDED_HOST", None)
        return self.wsgi_app(environ, start_response)


def _count(response: Response) -> Response:
    """Count the request by endpoint and status; a 429 also by the limit that refused it."""
    endpoint = request.endpoint or "unmatched"
    metrics.HTTP_REQUESTS.labels(endpoint=endpoint, status=str(response.status_code)).inc()
    if response.status_code == 429:
        breached = limiter.current_limit
        limited = breached is not None and breached.breached and len(breached.request_args) > 1
        # A Flask-Limiter limit names its scope; the API's failed-auth and the log-in pauses
        # are counted under the endpoint that answered 429.
        scope = breached.request_args[1] if limited else endpoint
        metrics.RATE_LIMITED.labels(scope=scope).inc()
    return response


def init_app(app: Flask) -> None:
    """The probes' Host handling, the request counter, the exemption from the rate limits."""
    app.config["METRICS_ALLOW_NETWORKS"] = parse_networks(app.config["METRICS_ALLOW_NETWORKS"])
    if app.config["PROMETHEUS_MULTIPROC_DIR"]:
        # prometheus-client writes there at the first count: a missing directory would fail
        # the delivery that counts, not the scrape.
        Path(app.config["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    app.wsgi_app = _AnyHost(app.wsgi_app, urlsplit(app.config["PORTAL_BASE_URL"]).netloc)
    app.after_request(_count)
    limiter.exempt(bp)
