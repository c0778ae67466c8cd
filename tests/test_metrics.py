"""/metrics: who may scrape it, and the numbers moving as mail is queued, delivered and tested."""

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from support.api import MESSAGES, auth, mail_body, new_key
from support.connection_tests import finished_panel
from support.factories import allow_test_server, configure, queue
from support.oauth import expire_cached_token
from support.smtp_servers import HOST, RecordingHandler, closed_port, smtp_server
from support.workers import wait_until_final

from portal import crypto, delivery
from portal.app import create_app
from portal.extensions import db
from portal.models import OutboxMessage, utcnow

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-the-tests"
Samples = dict[tuple[str, frozenset], float]


def samples(response) -> Samples:
    """Every sample of a scrape, by name and labels."""
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def scrape(web):
    """Scrape the web app's /metrics from loopback (open there in development)."""
    client = web.test_client()
    return lambda: samples(client.get("/metrics"))


@pytest.fixture
def guarded(app_config, migrated):
    """An app made with these settings for /metrics (its engine disposed after the test)."""
    made = []

    def make(**config):
        made.append(create_app({**app_config, **config}))
        return made[-1].test_client()

    yield make
    for served in made:
        with served.app_context():
            db.engine.dispose()


def test_without_token_or_networks_metrics_answer_loopback_only_in_development(guarded):
    client = guarded()
    assert client.get("/metrics").status_code == 200
    elsewhere = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.status_code == 404


def test_without_token_or_networks_metrics_are_not_found_in_production(guarded):
    client = guarded(PORTAL_ENV="production", PORTAL_BASE_URL="https://portal.test")
    assert client.get("/metrics").status_code == 404


def test_the_token_protects_metrics(guarded):
    client = guarded(METRICS_TOKEN=TOKEN)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers=auth("wrong-token")).status_code == 401
    assert "portal_http_requests_total" in client.get("/metrics", headers=auth(TOKEN)).text


@pytest.mark.parametrize(
    ("address", "token", "status"),
    [("10.1.2.3", None, 200), ("192.0.2.7", None, 403), ("10.1.2.3", TOKEN, 200)],
)
def test_allowed_networks_admit_their_addresses_only(guarded, address, token, status):
    client = guarded(METRICS_ALLOW_NETWORKS="127.0.0.1/32, 10.0.0.0/8")
    headers = auth(token) if token else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == status


def test_with_both_configured_a_scrape_needs_the_network_and_the_token(guarded):
    client = guarded(METRICS_ALLOW_NETWORKS="10.0.0.0/8", METRICS_TOKEN=TOKEN)
    inside = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", environ_base=inside).status_code == 401
    assert client.get("/metrics", headers=auth(TOKEN), environ_base=inside).status_code == 200
    outside = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/metrics", headers=auth(TOKEN), environ_base=outside).status_code == 403


def test_a_bad_network_stops_the_app_from_starting(app_config):
    with pytest.raises(RuntimeError, match="METRICS_ALLOW_NETWORKS"):
        create_app({**app_config, "METRICS_ALLOW_NETWORKS": "10.0.0.0/33"})


def test_queued_mail_is_counted_by_status_with_the_age_of_the_oldest(scrape, people):
    configure(port=closed_port())
    queue(people.acme, 3)
    hour_ago = utcnow() - timedelta(hours=1)
    db.session.execute(update(OutboxMessage).values(created_at=hour_ago))
    db.session.commit()

    scraped = scrape()
    assert value(scraped, "portal_outbox_mails", status="queued") == 3
    assert value(scraped, "portal_outbox_mails", status="sent") == 0
    assert value(scraped, "portal_outbox_oldest_queued_seconds") >= 3600


def test_an_empty_outbox_has_no_oldest_mail(scrape, people):
    assert value(scrape(), "portal_outbox_oldest_queued_seconds") == 0


def test_worker_deliveries_show_up_in_the_web_scrape_by_outcome_and_server(
    workers, people, web, tmp_path
):
    """The worker is another process: it writes its counters to the shared directory."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    workers.env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    web.config["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    scrape = web.test_client().get
    marker = f"PW-{uuid.uuid4()}"
    refusing = RecordingHandler(rcpt_replies={"rcpt@example.org": "550 5.1.1 No such user"})
    with (
        smtp_server(RecordingHandler(user="mailer", password=marker), auth=True) as good,
        smtp_server(refusing) as bad,
    ):
        login = {"auth_enabled": True, "username": "mailer"}
        configure(port=good.port, password_encrypted=crypto.encrypt(marker), **login)
        workers.start()
        queue(people.acme, 3)
        wait_until_final(3)
        assert len(good.handler.messages) == 3
        delivered = samples(scrape("/metrics"))
        configure(port=bad.port, auth_enabled=False)
        queue(people.acme, 1)
        wait_until_final(4)
        after_failure = scrape("/metrics")

    sent = {"outcome": "sent", "server": f"{HOST}:{good.port}"}
    assert value(delivered, "portal_deliveries_total", **sent) == 3
    assert value(delivered, "portal_outbox_mails", status="sent") == 3
    assert value(delivered, "portal_outbox_mails", status="queued") == 0
    scraped = samples(after_failure)
    failed = {"outcome": "failed", "server": f"{HOST}:{bad.port}"}
    assert value(scraped, "portal_deliveries_total", **failed) == 1
    assert value(scraped, "portal_outbox_mails", status="failed") == 1
    assert value(scraped, "portal_deliveries_total", **sent) == 3
    sessions = value(scraped, "portal_smtp_session_seconds_count", server=f"{HOST}:{good.port}")
    assert sessions >= 1
    assert marker not in after_failure.text


def test_a_connection_test_moves_its_counter_by_result(as_superuser, scrape, people):
    with smtp_server() as server:
        allow_test_server(server.port)
        before = scrape()
        form = {
            "host": HOST,
            "port": str(server.port),
            "security": "none",
            "sender_address": "noreply@example.com",
            "default_sender_enabled": "y",
            "timeout_seconds": "10",
            "max_sessions": "2",
            "retention_days": "30",
            "test_recipient": "check@example.org",
        }
        assert "Connection works" in finished_panel(as_superuser, "/settings/mail/test", form).text
        refused = {**form, "port": str(closed_port())}
        allow_test_server(int(refused["port"]))
        assert finished_panel(as_superuser, "/settings/mail/test", refused).status_code == 200
    after = scrape()
    for result in ("ok", "connect"):
        moved = value(after, "portal_connection_tests_total", result=result)
        assert moved == value(before, "portal_connection_tests_total", result=result) + 1


def test_http_requests_are_counted_by_endpoint_and_status_never_by_path(web, scrape):
    client = web.test_client()
    before = scrape()
    assert client.get("/login").status_code == 200
    assert client.get("/no/such/page/12345").status_code == 404
    after = scrape()
    for endpoint, status in (("auth.login", "200"), ("unmatched", "404")):
        labels = {"endpoint": endpoint, "status": status}
        moved = value(after, "portal_http_requests_total", **labels)
        assert moved == value(before, "portal_http_requests_total", **labels) + 1
    assert "/no/such/page" not in client.get("/metrics").text


def test_rate_limited_requests_are_counted_by_the_limits_scope(web, scrape, people, mail_settings):
    web.config["API_RATE_LIMIT"] = "1 per minute"
    token = new_key(people.acme)
    client = web.test_client()
    before = value(scrape(), "portal_rate_limited_total", scope="api")
    answers = [
        client.post(MESSAGES, json=mail_body(), headers=auth(token)).status_code for _ in range(2)
    ]
    assert answers[-1] == 429
    assert value(scrape(), "portal_rate_limited_total", scope="api") == before + 1


@pytest.mark.parametrize(
    ("error", "reason"), [("temporarily_unavailable", "error"), ("invalid_client", "refused")]
)
def test_failed_token_refreshes_are_counted_by_reason(
    connected, provider, smtp, people, scrape, error, reason
):
    before = value(scrape(), "portal_token_refresh_failures_total", reason=reason)
    provider.fail_refresh_with = error
    expire_cached_token()
    (message,) = queue(people.acme)
    delivery.deliver(message.id)
    after = value(scrape(), "portal_token_refresh_failures_total", reason=reason)
    assert after == before + 1


def test_a_missing_multiprocess_directory_is_made_at_start(app_config, migrated, tmp_path):
    wanted = tmp_path / "not-yet" / "prometheus"
    made = create_app({**app_config, "PROMETHEUS_MULTIPROC_DIR": str(wanted)})
    assert wanted.is_dir()
    assert "portal_outbox_mails" in made.test_client().get("/metrics").text
    with made.app_context():
        db.engine.dispose()


def test_metrics_server_serves_another_process_counts_behind_the_token(
    app_config, migrated, tmp_path
):
    """A worker-only host: `portal metrics-server` answers what that host's processes wrote."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "PORTAL_ENCRYPTION_KEYS": app_config["PORTAL_ENCRYPTION_KEYS"],
        "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"],
        "SECRET_KEY": app_config["SECRET_KEY"],
        "PORTAL_BASE_URL": f"http://{app_config['SERVER_NAME']}",  # production mode on PostgreSQL
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "METRICS_TOKEN": TOKEN,
    }
    count = "from portal import metrics; metrics.count_deliveries('mx.example.org:25', ['sent'])"
    subprocess.run([sys.executable, "-c", count], cwd=ROOT, env=env, check=True)
    serve = "from portal.app import main; main()"
    command = [sys.executable, "-c", serve, "metrics-server", "--port", "0"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stderr.readline().split()[-1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)  # noqa: S310 - our own server on loopback
        refused.value.close()
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers=auth(TOKEN))  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            text = answer.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
    sent = 'portal_deliveries_total{outcome="sent",server="mx.example.org:25"} 1.0'
    assert sent in text
