"""The connection test as a job: the request answers at once, no secret queued, one user's test."""

import json
import time

import pytest
from support.connection_tests import finished_panel, run_jobs, status_url
from support.factories import allow_test_server
from support.forms import VALID, company_data, steps
from support.held_servers import HOLD_SECONDS, silent_server
from support.smtp_servers import HOST, RecordingHandler, smtp_server
from support.web import Browser
from support.workers import WAIT_SECONDS

from portal import redis_client
from portal.delivery import connection_check, connection_jobs
from portal.delivery.connection_check import LOCK_KEY

GLOBAL_TEST = "/settings/mail/test"
RECIPIENT = "check@example.org"
TYPED = "typed-but-never-saved-pw"


def global_form(port: int, /, **overrides) -> dict:
    data = {
        **VALID,
        "host": HOST,
        "port": str(port),
        "security": "none",
        "timeout_seconds": "60",
        "test_recipient": RECIPIENT,
        **overrides,
    }
    if overrides.get("auth_enabled") is None:
        for name in ("auth_enabled", "username", "password"):
            data.pop(name)
    return data


def company_form(port: int) -> dict:
    form = company_data(host=HOST, port=str(port), security="none", timeout_seconds="60")
    return {**form, "test_recipient": RECIPIENT}


def company_test(company) -> str:
    return f"/companies/{company.id}/email/test"


def poll_until(browser: Browser, url: str, shown: str) -> str:
    """Poll the panel as the page does until it shows `shown`; its text."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        page = browser.get(url, htmx=True).text
        if shown in page:
            return page
        time.sleep(0.2)
    pytest.fail(f"the panel never showed {shown!r}: {page}")


@pytest.fixture
def server(app):
    with smtp_server() as running:
        allow_test_server(running.port)
        yield running


def test_the_answer_comes_while_the_worker_still_waits_for_the_greeting(as_superuser, app, workers):
    workers.start_ready()
    with silent_server() as silent:
        allow_test_server(silent.port)
        started = as_superuser.post(GLOBAL_TEST, global_form(silent.port), htmx=True)

        assert started.status_code == 200
        assert "Connecting waits at most 15 s" in started.text
        polled = status_url(started.text)
        running = poll_until(as_superuser, polled, 'class="running" data-step="greeting"')
        # The answer is in; the real worker's test still holds the server's connection.
        assert silent.accepted.is_set() and not silent.closed.is_set()
        assert "Cancel" in running and "Connection works." not in running

        cancelling = as_superuser.post(f"{polled}/cancel", {}, htmx=True)
        assert cancelling.status_code == 200 and "Cancelling…" in cancelling.text
        final = poll_until(as_superuser, polled, "Cancelled.")
        assert silent.closed.wait(HOLD_SECONDS)
    assert status_url(final) is None  # the finished panel stops polling
    assert ("greeting", False) in steps(final)
    assert not redis_client.connection(app).exists(LOCK_KEY.format("global"))


def test_the_queued_job_and_redis_never_hold_the_typed_password(as_superuser, app):
    handler = RecordingHandler(user="mailer", password=TYPED)
    with smtp_server(handler, auth=True) as running:
        allow_test_server(running.port)
        form = global_form(running.port, auth_enabled="y", username="mailer", password=TYPED)
        started = as_superuser.post(GLOBAL_TEST, form, htmx=True)
        assert started.status_code == 200 and handler.connections == []

        redis = redis_client.connection(app)
        jobs = [key for key in redis.keys("rq:job:*") if redis.type(key) == b"hash"]
        assert jobs, "the test was queued as an RQ job"
        stored = b"".join(
            repr(redis.hgetall(key)).encode()
            if redis.type(key) == b"hash"
            else repr(redis.dump(key)).encode()
            for key in redis.keys("*")
        )
        assert TYPED.encode() not in stored and b"mailer" not in stored  # the request is sealed

        run_jobs(as_superuser.client.application)
        final = as_superuser.get(status_url(started.text), htmx=True).text
    assert "Connection works." in final
    assert [a for c in handler.connections for a in c.auths] == [("mailer", False, True)]
    assert redis.keys("portal:connection-test:*:request") == []  # read once, then gone
    assert TYPED not in final


def test_a_greeting_that_never_comes_is_told_within_the_short_connect_timeout(
    as_superuser, monkeypatch
):
    # Fault-injection bound: the 15 s of the real constant made small, the timeout left at 60 s.
    monkeypatch.setattr(connection_check, "CONNECT_TIMEOUT_SECONDS", 1)
    with silent_server() as silent:
        allow_test_server(silent.port)
        final = finished_panel(as_superuser, GLOBAL_TEST, global_form(silent.port)).text
        assert silent.closed.wait(HOLD_SECONDS)
    assert [name for name, ok in steps(final) if not ok] == ["greeting"]
    assert "sent no greeting within 1 s" in final
    assert "within 60 s" not in final


def test_only_the_user_who_started_a_test_sees_or_cancels_it(as_acme, people, web, server):
    started = as_acme.post(company_test(people.acme), company_form(server.port), htmx=True)
    polled = status_url(started.text)
    assert as_acme.get(polled, htmx=True).status_code == 200

    test_id = polled.rsplit("/", 1)[1]
    superuser, globex = Browser(web.test_client()), Browser(web.test_client())
    superuser.login(people.superuser.email)
    globex.login(people.globex_admin.email)
    for visitor, url in [
        (superuser, polled),  # another user, the same company
        (superuser, f"{GLOBAL_TEST}/{test_id}"),  # another scope
        (globex, polled),  # another company's admin
        (globex, f"/companies/{people.globex.id}/email/test/{test_id}"),
    ]:
        assert visitor.get(url, htmx=True).status_code == 404, url
        assert visitor.post(f"{url}/cancel", {}, htmx=True).status_code == 404, url
    assert as_acme.get(f"{polled[:-4]}nope", htmx=True).status_code == 404

    run_jobs(web)
    assert "Connection works." in as_acme.get(polled, htmx=True).text


def test_a_test_nobody_runs_says_so_and_can_be_cancelled(as_acme, people, app, server):
    url = company_test(people.acme)
    started = as_acme.post(url, company_form(server.port), htmx=True)
    polled = status_url(started.text)
    assert "Starting the test…" in as_acme.get(polled, htmx=True).text

    state_key = f"portal:connection-test:{polled.rsplit('/', 1)[1]}:state"
    redis = redis_client.connection(app)
    state = json.loads(redis.get(state_key))
    state["queued_at"] -= 40  # as if queued 40 s ago, with no worker.py started
    redis.set(state_key, json.dumps(state), keepttl=True)
    waited = as_acme.get(polled, htmx=True).text
    assert "No worker is running: start worker.py." in waited

    cancelled = as_acme.post(f"{polled}/cancel", {}, htmx=True)
    assert "Cancelled." in cancelled.text and status_url(cancelled.text) is None
    # The lock went with it: a new test may start, and the cancelled job connects nowhere.
    again = as_acme.post(url, company_form(server.port), htmx=True)
    assert again.status_code == 200 and status_url(again.text)
    run_jobs(as_acme.client.application)
    assert len(server.handler.connections) == 1
    assert "Connection works." in as_acme.get(status_url(again.text), htmx=True).text
    assert "Cancelled." in as_acme.get(polled, htmx=True).text


def test_a_queued_test_speaks_of_the_worker_only_once_it_has_waited(monkeypatch, app):
    monkeypatch.setattr(connection_jobs, "NO_WORKER_SECONDS", 0)
    state = {"status": "queued", "queued_at": time.time() - 5}
    assert connection_jobs.waiting(state) == "No worker is running: start worker.py."
    assert connection_jobs.waiting({**state, "queued_at": time.time()}) is None
    assert connection_jobs.waiting({**state, "status": "running"}) is None


def test_a_test_whose_worker_died_says_so_and_stops_polling(as_superuser, app, server):
    started = as_superuser.post(GLOBAL_TEST, global_form(server.port), htmx=True)
    polled = status_url(started.text)
    redis = redis_client.connection(app)
    state_key = f"portal:connection-test:{polled.rsplit('/', 1)[1]}:state"
    state = json.loads(redis.get(state_key))
    assert state["timeout"] == 60
    # As a worker killed mid-test leaves it: running, begun longer ago than the job may run.
    state.update(status="running", started_at=time.time() - (2 * 60 + 30 + 61))
    redis.set(state_key, json.dumps(state), keepttl=True)

    page = as_superuser.get(polled, htmx=True).text
    assert "The worker stopped during the test" in page and status_url(page) is None
    state["started_at"] = time.time() - 5  # still within its bound: it runs on
    redis.set(state_key, json.dumps(state), keepttl=True)
    assert status_url(as_superuser.get(polled, htmx=True).text) == polled
