"""A connection test as the page runs it: started, its job run by a worker, its final panel."""

import re

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from portal import redis_client
from portal.outbox import handoff
from support.web import Browser

# The polling panel's own address, as the page's htmx reads it.
STATUS = re.compile(r'hx-get="([^"]+)" hx-trigger="every 1s"')


def status_url(page: str) -> str | None:
    """Where a running test's panel polls; None once the panel is final (or a refusal)."""
    found = STATUS.search(page)
    return found.group(1) if found else None


def run_jobs(app) -> None:
    """Run every queued job with an RQ SimpleWorker in burst mode, in `app`'s context."""
    with app.app_context():
        connection = redis_client.connection()
        queue = handoff.mail_queue()
        SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)


def finished_panel(browser: Browser, url: str, data: dict, htmx: bool = True):
    """Post the test as the button does; if it started, run its job and give the final panel.

    The job runs under the serving app (its config, e.g. MAIL_CA_FILE), as the worker would.
    """
    started = browser.post(url, data, htmx=htmx)
    polled = status_url(started.text)
    if started.status_code != 200 or polled is None:
        return started
    run_jobs(browser.client.application)
    return browser.get(polled, htmx=True)
