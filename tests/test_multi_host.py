"""Two web hosts and two worker hosts on one PostgreSQL and one Redis, each with its own instance/.

What one host saves or signs, another uses: a password saved through one web host opens the
SMTP server for the other worker host, a login cookie from one web host works on the other,
exactly one sweeper runs over all of them (and another takes over when it is killed), and
mail queued through either web host goes out exactly once.
"""

import os
import signal
import time

import pytest
import requests
from sqlalchemy import select, text
from support.api import MESSAGES, auth, mail_body, new_key
from support.factories import allow_test_server, configure
from support.forms import company_data, company_url
from support.hosts import csrf_token, end, free_port, host_env, log_in, start_web, sweeper_record
from support.smtp_servers import RecordingHandler, server_context, smtp_server
from support.workers import all_message_ids, message_ids, wait_until_final

from portal import crypto
from portal.delivery.election import SWEEPER_LOCK_ID
from portal.extensions import db
from portal.models import MailConfig

pytestmark = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")),
    reason="several hosts share a database server and a Redis server: set TEST_DATABASE_URL "
    "(PostgreSQL) and TEST_REDIS_URL",
)
TAKEOVER_MARGIN_SECONDS = 10  # past one sweep interval: a bound for a broken build, not speed
MAILS_PER_HOST = 20


@pytest.fixture
def hosts(app_config, people, tmp_path, certs, workers):
    """Two gunicorn web hosts on loopback; their base URLs. Worker hosts: `workers`, same env."""
    ports = [free_port(), free_port()]
    shared = {"PORTAL_BASE_URL": f"http://127.0.0.1:{ports[0]}", "MAIL_CA_FILE": str(certs.ca)}
    workers.env.update(shared)
    started = []
    try:
        for number, port in enumerate(ports, start=1):
            env = host_env(app_config, tmp_path / f"web-{number}", **shared)
            started.append(start_web(env, port, tmp_path / f"web-{number}.log"))
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in started:
            end(process)
        for log in sorted(tmp_path.glob("web-*.log")):  # shown by pytest when a test fails
            print(f"--- {log.name}", log.read_text(errors="replace")[-3000:], sep="\n")


def start_worker_host(workers, tmp_path, number: int):
    """A worker host: worker.py with an instance/ of its own."""
    instance = tmp_path / f"worker-host-{number}"
    instance.mkdir()
    workers.env["PORTAL_INSTANCE_PATH"] = str(instance)
    return workers.start_ready()


def lock_holders() -> int:
    """Sessions holding the sweeper's advisory lock, as PostgreSQL sees them."""
    db.session.rollback()
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = :high AND objid = :low AND objsubid = 1"
        # Advisory locks are per database: other runs' sweepers hold theirs in their own.
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    high, low = SWEEPER_LOCK_ID >> 32, SWEEPER_LOCK_ID & 0xFFFFFFFF
    count = db.session.scalar(query, {"high": high, "low": low})
    db.session.rollback()
    return count


def group_of(record: dict[str, str]) -> int | None:
    """The process group (the worker.py) of the process the sweeper's record names; None: gone."""
    try:
        return os.getpgid(int(record["host"].rpartition(":")[2]))
    except ProcessLookupError:
        return None


def test_hosts_share_secrets_sessions_one_sweeper_and_deliver_each_mail_once(
    app, people, hosts, workers, certs, tmp_path
):
    web_1, web_2 = hosts
    handler = RecordingHandler(user="acme", password="acme-smtp-pass")
    with smtp_server(handler, starttls=server_context(certs.good), auth=True) as server:
        configure(port=2525)  # the global row: the superuser's network allowlist lives there
        allow_test_server(server.port)
        worker_2 = start_worker_host(workers, tmp_path, 2)

        # (a) A password saved through web host 1 ...
        admin = log_in(web_1, people.acme_admin.email)
        form = admin.get(f"{web_1}{company_url(people.acme)}", timeout=30)
        fields = company_data(
            host="127.0.0.1",
            port=str(server.port),
            security="starttls",
            auth_enabled="y",
            username="acme",
            password="acme-smtp-pass",
            csrf_token=csrf_token(form.text),
        )
        saved = admin.post(
            f"{web_1}{company_url(people.acme)}", data=fields, allow_redirects=False, timeout=30
        )
        assert saved.status_code == 302, saved.text
        db.session.rollback()
        own = db.session.scalar(select(MailConfig).where(MailConfig.company_id == people.acme.id))
        assert crypto.decrypt(own.password_encrypted) == "acme-smtp-pass"

        # (b) ... whose login cookie works on web host 2 ...
        on_web_2 = requests.Session()
        on_web_2.cookies.update({"session": admin.cookies["session"]})
        page = on_web_2.get(f"{web_2}{company_url(people.acme)}", allow_redirects=False, timeout=30)
        assert page.status_code == 200 and "A password is saved" in page.text
        assert "acme-smtp-pass" not in page.text

        # ... opens the SMTP server for worker host 2, the only worker running yet.
        key = new_key(people.acme)
        first = requests.post(f"{web_2}{MESSAGES}", json=mail_body(), headers=auth(key), timeout=30)
        assert first.status_code == 202, first.text
        wait_until_final(1)
        assert [c.auths for c in handler.connections] == [[("acme", True, True)]]

        # (c) Exactly one sweeper over both worker hosts: the one that came first.
        worker_1 = start_worker_host(workers, tmp_path, 1)
        time.sleep(2 * float(workers.env["MAIL_SWEEP_SECONDS"]))  # both have tried the lock
        assert group_of(sweeper_record()) == worker_2.pid
        assert lock_holders() == 1

        # (d) Mails queued through both web hosts go out exactly once each.
        for base in (web_1, web_2):
            for _ in range(MAILS_PER_HOST):
                queued = requests.post(
                    f"{base}{MESSAGES}", json=mail_body(), headers=auth(key), timeout=30
                )
                assert queued.status_code == 202, queued.text
        wait_until_final(1 + 2 * MAILS_PER_HOST)
        arrived = message_ids(handler)
        assert set(arrived) == all_message_ids() and set(arrived.values()) == {1}

        # (c) The sweeper's worker host is killed: the other takes over within a sweep interval.
        workers.kill(worker_2, signal.SIGKILL)
        killed_at = time.monotonic()
        bound = float(workers.env["MAIL_SWEEP_SECONDS"]) + TAKEOVER_MARGIN_SECONDS
        while True:
            record = sweeper_record()
            if float(record["at"]) > time.time() - 1 and group_of(record) == worker_1.pid:
                break
            assert time.monotonic() - killed_at < bound, f"no takeover: {record}"
            time.sleep(0.05)
        assert lock_holders() == 1
