"""A page whose form token expired gets a fresh one, so what was typed can still be saved.

A form's CSRF token is valid for WTF_CSRF_TIME_LIMIT (one hour). An htmx request refused for
it answers 400 with PAGE_EXPIRED set and swaps nothing, so the typed values stay in the form;
the page asks /csrf-token for a new token and sends the same request again.
"""

from flask import Blueprint, Flask, jsonify, render_template
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf

from portal.web.htmx import is_htmx

bp = Blueprint("page_token", __name__)
PAGE_EXPIRED = "X-Page-Expired"  # the header app.js reads: this 400 is an expired page


@bp.get("/csrf-token")
def show():
    """A fresh token for this session, and whether the session is still logged in."""
    response = jsonify(csrf_token=generate_csrf(), signed_in=current_user.is_authenticated)
    response.headers["Cache-Control"] = "no-store"
    return response


def _expired(exc: CSRFError):
    if is_htmx():
        response = jsonify(error="page-expired", reason=exc.description)
        response.status_code = 400
        response.headers[PAGE_EXPIRED] = "1"
        return response
    return render_template("errors/page_expired.html", error=exc), 400


def init_app(app: Flask) -> None:
    """Answer a refused CSRF token as an expired page (more specific than the 400 page)."""
    app.register_error_handler(CSRFError, _expired)
