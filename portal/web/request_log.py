"""One log line per request, under a request id the client may give and the response carries."""

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from portal import logs

log = logging.getLogger(__name__)
HEADER = "X-Request-ID"
# An id from a proxy or client is kept only if it is short and plain, so it cannot forge
# log lines or carry anything large.
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id() -> str:
    """This request's id: the client's X-Request-ID when plain, else a new one."""
    if "request_id" not in g:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _GIVEN_ID.match(given) else uuid.uuid4().hex
    return g.request_id


def _start() -> None:
    logs.clear()  # this thread's previous request
    g.request_started = time.perf_counter()
    logs.bind(request_id=request_id())


def _finish(response: Response) -> Response:
    response.headers[HEADER] = request_id()
    started = g.get("request_started")
    # The route's pattern, never the path or the query: both can carry one-time tokens.
    rule = request.url_rule.rule if request.url_rule is not None else None
    log.info(
        "%s %s %s",
        request.method,
        rule or "(no route)",
        response.status_code,
        extra={
            "request_id": request_id(),
            "method": request.method,
            "route": rule,
            "endpoint": request.endpoint,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
            "remote_addr": request.remote_addr,
        },
    )
    return response


def _end(_exc: BaseException | None) -> None:
    logs.clear()


def init_app(app: Flask) -> None:
    """Log each request and stamp each response (call right after the host check)."""
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_end)
