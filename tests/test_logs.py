"""The log: one JSON line per request and per delivered mail, with their ids, and no secrets."""

import email
import json
import os
import re
import subprocess
import sys
import uuid
from email import policy
from pathlib import Path

import pytest
from support.api import MESSAGES, auth, mail_body, new_key
from support.factories import configure, queue
from support.smtp_servers import RecordingHandler, smtp_server
from support.web import Browser
from support.workers import wait_for, wait_until_final

from portal import crypto, logs
from portal.app import create_app
from portal.exceptions import ConfigError
from portal.extensions import db
from portal.models import OutboxMessage

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"/set-password/([A-Za-z0-9_.\-]+)")


def json_lines(text: str) -> list[dict]:
    """Every line of the text, each of which must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_lines(text: str) -> list[dict]:
    return [r for r in json_lines(text) if r["logger"] == "portal.web.request_log"]


def test_each_request_logs_one_json_line_under_the_id_its_response_carries(web, capsys):
    capsys.readouterr()
    response = web.test_client().get("/login")

    [line] = request_lines(capsys.readouterr().err)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/login", 200)
    assert line["level"] == "INFO" and line["duration_ms"] >= 0
    assert line["message"] == "GET /login 200"


@pytest.mark.parametrize(
    ("given", "kept"),
    [("lb-7f3a.9:1", True), ("has spaces", False), ("x" * 129, False), ('a"b" {x}', False)],
)
def test_a_plain_request_id_from_the_proxy_is_kept_and_anything_else_replaced(
    web, capsys, given, kept
):
    capsys.readouterr()
    response = web.test_client().get("/login", headers={"X-Request-ID": given})

    [line] = request_lines(capsys.readouterr().err)
    assert (response.headers["X-Request-ID"] == given) is kept
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_a_company_admins_requests_carry_the_company_id(as_acme, people, capsys):
    capsys.readouterr()
    response = as_acme.get(f"/companies/{people.acme.id}/email")

    assert response.status_code == 200
    [line] = request_lines(capsys.readouterr().err)
    assert line["company_id"] == people.acme.id
    capsys.readouterr()
    as_acme.get("/login")  # the same thread's next request starts with no company
    assert request_lines(capsys.readouterr().err)[0]["company_id"] is None


def test_an_api_request_carries_its_keys_company_and_never_the_key(
    web, people, mail_settings, capsys
):
    token = new_key(people.acme)
    capsys.readouterr()
    response = web.test_client().post(MESSAGES, json=mail_body(), headers=auth(token))

    assert response.status_code == 202, response.text
    err = capsys.readouterr().err
    [line] = request_lines(err)
    assert (line["company_id"], line["route"], line["status"]) == (people.acme.id, MESSAGES, 202)
    assert token not in err


def test_a_one_time_link_is_logged_as_its_route_never_its_token(web, capsys):
    token = f"planted-{uuid.uuid4().hex}"
    capsys.readouterr()
    web.test_client().get(f"/set-password/{token}?next=/x")

    err = capsys.readouterr().err
    assert token not in err
    assert request_lines(err)[0]["route"] == "/set-password/<token>"


def test_an_unknown_path_logs_no_route(web, capsys):
    capsys.readouterr()
    web.test_client().get("/no-such-page")

    [line] = request_lines(capsys.readouterr().err)
    assert (line["route"], line["status"]) == (None, 404)


def test_the_text_format_shows_the_ids_in_brackets(app_config, migrated, capsys):
    app = create_app({**app_config, "LOG_FORMAT": "text"})
    capsys.readouterr()
    app.test_client().get("/login", headers={"X-Request-ID": "req-42"})

    [line] = [x for x in capsys.readouterr().err.splitlines() if "request_log" in x]
    assert line.endswith("GET /login 200 [request_id=req-42]")
    create_app(app_config)  # the JSON handler back for the tests after this one


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, text"), ("LOG_LEVEL", "LOUD", "")],
)
def test_a_bad_log_setting_stops_the_app_from_starting(app_config, name, value, says):
    with pytest.raises(ConfigError, match=says or name):
        create_app({**app_config, name: value})


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:s3cret-pw@cache:6379/0 is down", "redis://:[redacted]@cache:6379/0 is down"),
        ("postgresql://app:s3cret-pw@db/portal", "postgresql://app:[redacted]@db/portal"),
        ("Authorization: Bearer pk_live_0123456789abcdef", "Authorization: Bearer [redacted]"),
        ("see https://example.com/a@b", "see https://example.com/a@b"),
    ],
)
def test_passwords_in_urls_and_bearer_credentials_are_scrubbed(text, shown):
    assert logs.scrub(text) == shown


def queued_through(workers, people, port: int, password: str) -> OutboxMessage:
    """Global settings logging in as `mailer` with this password, a worker, and one mail."""
    sealed = crypto.encrypt(password)
    configure(port=port, auth_enabled=True, username="mailer", password_encrypted=sealed)
    workers.start_ready()
    [mail] = queue(people.acme, 1)
    return mail


def test_a_workers_lines_are_json_with_the_mail_company_and_job_ids_and_no_secret(
    workers, people, web, tmp_path
):
    """A real worker.py: the mail's outcome, RQ's own lines and a job's, with a planted password."""
    planted = f"PW-{uuid.uuid4()}"
    with smtp_server(RecordingHandler(user="mailer", password=planted), auth=True) as server:
        mail = queued_through(workers, people, server.port, planted)
        wait_until_final(1)
        # A reset request is an RQ job in the worker; its mail carries a one-time link.
        visitor = Browser(web.test_client())
        visitor.post("/forgot-password", {"email": people.acme_admin.email})
        wait_for(lambda: len(server.handler.messages) == 2, "the reset mail")
        reset = email.message_from_bytes(server.handler.messages[1].data, policy=policy.default)
        link = LINK.search(reset.get_body(("plain",)).get_content()).group(1)
        workers.stop_all()

    lines = json_lines((tmp_path / "worker-0.log").read_text())
    # A sent mail is a DEBUG line of its own and part of its commit's INFO summary.
    [summary] = [r for r in lines if mail.id in r.get("mail_ids", ())]
    assert summary["logger"] == "portal.delivery.batch"
    assert summary["message"] == f"1 outcomes recorded via 127.0.0.1:{server.port} (1 sent)"
    assert any(r["logger"] == "rq.worker" and "started" in r["message"] for r in lines)
    [job_ok] = [r for r in lines if "Job OK" in r["message"]]
    assert job_ok["job_id"] and job_ok["job_id"] in job_ok["message"]
    text = (tmp_path / "worker-0.log").read_text()
    assert planted not in text and link not in text


def test_a_refused_password_is_never_written_to_the_workers_log(workers, people, tmp_path):
    planted = f"PW-{uuid.uuid4()}"
    with smtp_server(RecordingHandler(user="mailer", password="the real one"), auth=True) as srv:
        mail = queued_through(workers, people, srv.port, planted)
        wait_for(lambda: db.session.get(OutboxMessage, mail.id).attempts >= 1, "the first attempt")
        workers.stop_all()

    text = (tmp_path / "worker-0.log").read_text()
    assert planted not in text
    # Later attempts may find the server gone (connection refused): the first one is the 535.
    deferred = next(r for r in json_lines(text) if r.get("mail_id") == mail.id)
    assert deferred["outcome"] == "deferred" and "535" in deferred["message"]
    assert deferred["company_id"] == people.acme.id


def test_migrations_log_through_the_portals_json_handler(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_ENV": "development",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from portal.app import main; main()", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stderr)
    assert any(r["logger"] == "alembic.runtime.migration" for r in lines)
    assert all(r["level"] in ("INFO", "WARNING") for r in lines)
