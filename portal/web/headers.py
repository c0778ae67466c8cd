"""The headers every response carries: a strict content policy, no framing, no caching of pages."""

from flask import Flask

# No inline script or style anywhere (htmx's indicator style lives in app.css), so 'self' is all.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    # Set-password links carry their token in the path: it never goes to another site. Not
    # no-referrer: over HTTPS, Flask-WTF refuses a form posted without a same-origin Referer.
    "Referrer-Policy": "same-origin",
}


def _secure(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # Settings pages carry tenant data: keep them out of shared caches.
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
