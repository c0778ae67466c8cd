"""Redis through a real Sentinel: the queue's wake-up, a worker's delivery and the rate limits."""

import pytest
from redis import Redis
from rq import Worker
from support.factories import configure, queue
from support.hosts import redis_with_sentinel
from support.smtp_servers import smtp_server
from support.workers import message_ids, wait_for, wait_until_final

from portal import redis_client
from portal.app import create_app
from portal.extensions import db
from portal.outbox import handoff

SERVICE = "portal-test"


@pytest.fixture
def sentinel(tmp_path):
    """A master and a sentinel on loopback; (master client, the app config naming the sentinel)."""
    with redis_with_sentinel(tmp_path, SERVICE) as (master_port, sentinel_port):
        master = Redis(port=master_port)
        yield (
            master,
            {
                "REDIS_URL": None,
                "REDIS_SENTINELS": f"127.0.0.1:{sentinel_port}",
                "REDIS_SENTINEL_MASTER": SERVICE,
            },
        )
        master.close()


@pytest.fixture
def through_sentinel(app_config, sentinel, migrated):
    """An app that knows only the sentinel."""
    _, overrides = sentinel
    served = create_app({**app_config, **overrides, "API_AUTH_FAILURE_LIMIT": "2 per minute"})
    yield served
    redis_client.connection(served).close()
    with served.app_context():
        db.engine.dispose()


def test_the_portal_reaches_the_master_the_sentinel_names(sentinel, through_sentinel):
    master, _ = sentinel
    with through_sentinel.app_context():
        redis_client.connection().set("portal:probe", "through the sentinel")
    assert master.get("portal:probe") == b"through the sentinel"


def test_a_worker_that_knows_only_the_sentinel_is_woken_and_delivers(
    app, people, workers, sentinel, through_sentinel
):
    master, overrides = sentinel
    del workers.env["REDIS_URL"]
    workers.env.update(
        REDIS_SENTINELS=overrides["REDIS_SENTINELS"],
        REDIS_SENTINEL_MASTER=SERVICE,
        MAIL_POLL_SECONDS="600",  # only the wake-up can bring this mail out in time
    )
    with smtp_server() as server:
        configure(port=server.port)
        workers.start()
        channel = handoff.wake_channel(master)
        wait_for(lambda: Worker.all(connection=master), "the worker to register on the master")
        wait_for(lambda: master.pubsub_numsub(channel)[0][1] > 0, "the worker to listen")
        with through_sentinel.app_context():
            (message,) = queue(people.acme)
            message_id = message.message_id
        wait_until_final(1)
    assert message_ids(server.handler) == {message_id: 1}


def test_the_rate_limits_are_kept_on_the_master_the_sentinel_names(sentinel, through_sentinel):
    master, _ = sentinel
    client = through_sentinel.test_client()
    answers = [client.post("/api/v1/messages", json={}).status_code for _ in range(3)]
    assert answers == [401, 401, 429]
    assert master.keys("LIMITS*")  # counted on the master, not in the process's memory


def test_the_sentinels_and_the_master_each_get_their_own_password(
    app_config, migrated, tmp_path, caplog
):
    passwords = {"sentinel_password": "sentinel-secret", "master_password": "master-secret"}
    with redis_with_sentinel(tmp_path, SERVICE, **passwords) as (master_port, sentinel_port):
        config = {
            **app_config,
            "REDIS_URL": None,
            "REDIS_SENTINELS": f"127.0.0.1:{sentinel_port}",
            "REDIS_SENTINEL_MASTER": SERVICE,
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
            "REDIS_SENTINEL_MASTER_PASSWORD": "master-secret",
            "REDIS_SENTINEL_DB": 3,
            "API_AUTH_FAILURE_LIMIT": "1 per minute",
        }
        served = create_app(config)
        master = Redis(port=master_port, password="master-secret", db=3)
        try:
            with served.app_context():
                redis_client.connection().set("portal:probe", "with passwords")
            client = served.test_client()
            answers = [client.post("/api/v1/messages", json={}).status_code for _ in range(2)]
            assert answers == [401, 429]
            assert master.get("portal:probe") == b"with passwords"
            assert master.keys("LIMITS*")
        finally:
            master.close()
            redis_client.connection(served).close()
            with served.app_context():
                db.engine.dispose()
    assert "secret" not in caplog.text


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:port", ":26379"])
def test_a_malformed_sentinel_list_stops_the_portal_from_starting(app_config, value):
    with pytest.raises(RuntimeError, match="REDIS_SENTINELS must be host:port"):
        create_app({**app_config, "REDIS_SENTINELS": value})
