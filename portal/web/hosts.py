"""Which requests are answered: the proxies whose X-Forwarded-* is believed, the trusted hosts."""

from flask import Flask, request
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix


def _refuse_untrusted_host() -> None:
    # Flask found the Host outside TRUSTED_HOSTS and deferred the error to routing; raise it
    # before anything else (the CSRF check, the limiter, the login) looks at the request.
    if isinstance(request.routing_exception, SecurityError):
        raise request.routing_exception


def _unknown_host(_exc: SecurityError):
    # No URL can be built for an untrusted host, so no page either.
    return "Unknown host.\n", 400, {"Content-Type": "text/plain"}


def init_app(app: Flask) -> None:
    """Call before any other extension registers a before_request hook."""
    proxies = app.config["PORTAL_PROXY_COUNT"]
    if proxies:
        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=proxies,
            x_proto=proxies,
            x_host=proxies,
            x_port=proxies,
            x_prefix=proxies,
        )
    app.before_request(_refuse_untrusted_host)
    app.register_error_handler(SecurityError, _unknown_host)
