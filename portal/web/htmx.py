"""Answering htmx: the partial for a swap, the whole page otherwise, and navigation."""

from flask import make_response, redirect, render_template, request

UNPROCESSABLE = 422
# app.js swaps an error answer carrying this header like a success: the page's htmx config
# swaps no 4xx/5xx but 422 (a proxy's 502 page must not land in a form).
SWAP_ON_ERROR = "X-Swap-Error"


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


def swapped_on_error(body: str, status: int):
    """An error answer that is a partial for the request's target (a refusal to show in place)."""
    response = make_response(body, status)
    response.headers[SWAP_ON_ERROR] = "1"
    return response
