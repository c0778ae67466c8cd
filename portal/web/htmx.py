"""Responses that serve a full page, or only its partial to an htmx request."""

from flask import make_response, render_template, request

UNPROCESSABLE = 422


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def respond(page: str, partial: str, status: int = 200, **context):
    """Render the partial for htmx, the page (which includes it) otherwise."""
    response = make_response(render_template(partial if is_htmx() else page, **context), status)
    response.vary.add("HX-Request")
    return response
