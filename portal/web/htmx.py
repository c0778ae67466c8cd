"""Answering htmx: the partial for a swap, the whole page otherwise, and navigation."""

from flask import make_response, redirect, render_template, request

UNPROCESSABLE = 422


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_partial() -> bool:
    """An htmx swap; htmx restoring history after a cache miss asks for the whole page."""
    return is_htmx() and request.headers.get("HX-History-Restore-Request") != "true"


def respond(page: str, partial: str, status: int = 200, /, **context):
    """Render the partial for htmx, the page (which includes it) otherwise."""
    template = partial if wants_partial() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def navigate(url: str):
    """Send the browser to `url`: htmx follows HX-Redirect, a plain form a 303."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)
