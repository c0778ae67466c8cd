"""Hardening of the web app: links from the base URL, trusted hosts, sessions that end,
security headers on every page, a fresh CSRF secret at login, a private instance directory."""

import email
import os
import re
import stat
import tempfile
import time
from email import policy
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask_migrate import upgrade
from support.connection_tests import run_jobs
from support.factories import mail_config, run_queued_jobs, stored_mails
from support.smtp_servers import smtp_server

from portal import delivery, redis_client
from portal.app import create_app
from portal.extensions import db
from portal.models import OutboxMessage
from portal.web.account import MSG_LOGGED_OUT_EVERYWHERE
from portal.web.headers import CONTENT_SECURITY_POLICY

PASSWORD = "correct horse battery"  # the people fixture's password
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
BASE = "https://mail.example.com/portal"
LINK = re.compile(r"https?://[^\s\"<>]+/set-password/[A-Za-z0-9_.\-]+")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def csrf_in(page: str) -> str:
    match = CSRF.search(page)
    return match.group(1) or match.group(2)


class Visitor:
    """A test client at one host, sending the CSRF token of its session like the pages do."""

    def __init__(self, app: Flask, host: str = "portal.test", scheme: str = "http"):
        self.client = app.test_client()
        self.host = host
        self.base_url = f"{scheme}://{host}"

    def token(self, headers: dict | None = None) -> str:
        return csrf_in(self.get("/login", headers).text)

    def get(self, path: str, headers: dict | None = None):
        return self.client.get(path, base_url=self.base_url, headers=headers or {})

    def post(self, path: str, data: dict | None = None, token: str | None = None, headers=None):
        # A browser sends the page's address to its own site; over HTTPS Flask-WTF demands it.
        referer = {"Referer": f"{self.base_url}/"}
        headers = {**referer, **(headers or {}), "X-CSRFToken": token or self.token(headers)}
        return self.client.post(path, base_url=self.base_url, data=data or {}, headers=headers)

    def login(self, address: str, password: str = PASSWORD):
        return self.post("/login", {"email": address, "password": password})

    def cookie(self) -> str:
        return self.client.get_cookie("session", domain=self.host).value

    def copy(self, app: Flask) -> "Visitor":
        """Another browser, elsewhere, holding this one's session cookie."""
        other = Visitor(app, self.host, self.base_url.split(":", 1)[0])
        other.client.environ_base.update(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Other/1.0")
        other.client.set_cookie("session", self.cookie(), domain=self.host)
        return other


def logged_in(response) -> bool:
    return response.status_code == 200 and 'action="/logout"' in response.text


def sent_to_login(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.fixture
def serve(app_config):
    """Serve the app with some settings changed: serve(PORTAL_BASE_URL=...)."""
    made = []

    def make(**changes) -> Flask:
        served = create_app({**app_config, **changes})
        made.append(served)
        return served

    yield make
    for served in made:
        if "portal.redis" in served.extensions:
            served.extensions["portal.redis"].close()
        with served.app_context():
            db.engine.dispose()


@pytest.fixture
def based(serve) -> Flask:
    """The portal behind https://mail.example.com/portal, reachable as two trusted names."""
    return serve(PORTAL_BASE_URL=BASE, TRUSTED_HOSTS="portal.test,alias.example")


@pytest.fixture
def mail_server(app):
    """A real SMTP server the global settings point at, with the default sender."""
    with smtp_server() as server:
        mail_config(
            host="127.0.0.1",
            port=server.port,
            security="none",
            sender_address="noreply@example.com",
            sender_name="Portal",
            default_sender_enabled=True,
            timeout_seconds=5,
            egress_allowlist="127.0.0.1/32",
            egress_extra_ports=str(server.port),
        )
        yield server


def text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    return "\n".join(part.get_content() for part in message.walk() if not part.is_multipart())


def mailed_link(mail_server) -> str:
    """The one-time link in the mail that arrived: the stored copy keeps no link."""
    run_queued_jobs()  # a reset request's lookup runs in the worker
    for row in stored_mails():
        delivery.deliver(row.id)
    (link,) = set(LINK.findall(text_of(mail_server.handler.messages[-1].data)))
    return link


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


# --- 1. links from PORTAL_BASE_URL, hosts from TRUSTED_HOSTS ----------------------------

FORWARDED = {
    "X-Forwarded-Host": "attacker.example",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Prefix": "/evil",
}


@pytest.mark.parametrize(
    ("host", "headers"),
    [("portal.test", {}), ("alias.example", {}), ("portal.test", FORWARDED)],
    ids=["own-name", "other-trusted-name", "forwarded-headers-without-proxy"],
)
def test_reset_link_carries_the_base_url_whatever_the_host_says(
    based, people, mail_server, host, headers
):
    visitor = Visitor(based, host, "https")
    token = visitor.token()
    response = visitor.post("/forgot-password", {"email": people.acme_admin.email}, token, headers)
    assert response.status_code == 200

    run_queued_jobs()  # the worker looks the address up and queues the mail
    (row,) = stored_mails()
    delivery.deliver(row.id)
    (arrived,) = mail_server.handler.messages
    body = text_of(arrived.data)
    links = set(LINK.findall(body))
    (link,) = links  # the text and the HTML part carry the same one
    assert link.startswith(f"{BASE}/set-password/")
    assert "attacker" not in body and host not in body
    # Behind the proxy that serves /portal, the path is the app's own: the link works.
    assert visitor.get(f"/set-password/{token_of(link)}").status_code == 200


@pytest.mark.parametrize("path", ["/login", "/forgot-password", "/companies", "/static/app.css"])
def test_an_untrusted_host_gets_400(web, people, path):
    response = web.test_client().get(path, headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert response.text == "Unknown host.\n"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_reset_asked_for_with_an_untrusted_host_sends_nothing(web, people, mail_server):
    visitor = Visitor(web)
    token = visitor.token()  # a real session and token, replayed under another name
    response = visitor.client.post(
        "/forgot-password",
        data={"email": people.superuser.email},
        headers={
            "Host": "attacker.example",
            "X-CSRFToken": token,
            "Cookie": f"session={visitor.cookie()}",
        },
    )
    assert response.status_code == 400 and response.text == "Unknown host.\n"
    assert stored_mails() == []


def test_behind_one_proxy_the_forwarded_host_is_checked_too(serve, people, mail_server):
    proxied = serve(PORTAL_BASE_URL=BASE, TRUSTED_HOSTS="alias.example", PORTAL_PROXY_COUNT=1)
    client = proxied.test_client()
    refused = client.get("/login", headers={"X-Forwarded-Host": "attacker.example"})
    assert refused.status_code == 400
    visitor = Visitor(proxied)
    forwarded = {
        "X-Forwarded-Host": "alias.example",
        "X-Forwarded-Proto": "https",
        "Referer": "https://alias.example/forgot-password",
    }
    token = csrf_in(visitor.get("/forgot-password", forwarded).text)
    sent = visitor.post("/forgot-password", {"email": people.superuser.email}, token, forwarded)
    assert sent.status_code == 200
    link = mailed_link(mail_server)
    assert link.startswith(f"{BASE}/set-password/")


def test_invitation_link_carries_the_base_url(based, people, mail_server):
    superuser = Visitor(based, "alias.example", "https")
    assert superuser.login(people.superuser.email).status_code == 302
    response = superuser.post(
        f"/companies/{people.acme.id}/admins",
        {"email": "new.admin@example.org", "name": "Nina"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    (shown,) = set(LINK.findall(response.text))  # the superuser's fallback copy
    (row,) = stored_mails()
    delivery.deliver(row.id)
    (arrived,) = mail_server.handler.messages
    (mailed,) = set(LINK.findall(text_of(arrived.data)))
    assert shown == mailed and mailed.startswith(f"{BASE}/set-password/")


OAUTH_FORM = {
    "host": "smtp.example.com",
    "port": "587",
    "security": "starttls",
    "auth_enabled": "y",
    "auth_method": "oauth2",
    "_refresh": "auth_method",
}


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, f"{BASE}/oauth/callback"), ("https://proxy.example/cb", "https://proxy.example/cb")],
    ids=["from-the-base-url", "OAUTH_REDIRECT_URI-overrides"],
)
def test_oauth_redirect_uri_follows_the_base_url(serve, people, configured, expected):
    portal = serve(
        PORTAL_BASE_URL=BASE, TRUSTED_HOSTS="alias.example", OAUTH_REDIRECT_URI=configured
    )
    superuser = Visitor(portal, "alias.example", "https")
    superuser.login(people.superuser.email)
    page = superuser.post("/settings/mail", OAUTH_FORM, headers={"HX-Request": "true"}).text
    assert f'<code id="redirect-uri">{expected}</code>' in page


def test_production_refuses_to_start_without_a_base_url(app_config):
    config = {**app_config, "PORTAL_ENV": "production", "SERVER_NAME": None}
    with pytest.raises(RuntimeError, match="PORTAL_BASE_URL"):
        create_app(config)


# --- 4. sessions that end ---------------------------------------------------------------


def test_an_old_cookie_is_refused_after_logout(web, people):
    owner = Visitor(web)
    owner.login(people.superuser.email)
    thief = owner.copy(web)
    assert logged_in(thief.get("/companies"))  # a copied cookie works until the logout

    assert owner.post("/logout").status_code == 302
    for browser in (owner, thief):
        assert sent_to_login(browser.get("/companies"))


def test_an_old_cookie_is_refused_after_a_password_reset(web, people, mail_server):
    owner = Visitor(web)
    owner.login(people.acme_admin.email)
    thief = owner.copy(web)
    home = f"/companies/{people.acme.id}/email"
    assert logged_in(thief.get(home))

    Visitor(web).post("/forgot-password", {"email": people.acme_admin.email})
    link = mailed_link(mail_server)
    path = f"/set-password/{token_of(link)}"
    new = "a brand new passphrase"
    resetter = Visitor(web)
    done = resetter.post(path, {"password": new, "confirm": new})
    assert done.status_code == 302 and done.headers["Location"] == home

    assert logged_in(resetter.get(home))  # the reset's own session is the only one
    for browser in (owner, thief):
        assert sent_to_login(browser.get(home))


def test_removing_an_admin_ends_their_open_sessions(web, people):
    admin = Visitor(web)
    admin.login(people.acme_admin.email)
    api_keys_tab = f"/companies/{people.acme.id}/api-keys"
    assert logged_in(admin.get(api_keys_tab))
    superuser = Visitor(web)
    superuser.login(people.superuser.email)
    removed = superuser.post(f"/companies/{people.acme.id}/admins/{people.acme_admin.id}/remove")
    assert removed.status_code in (200, 302)
    assert sent_to_login(admin.get(api_keys_tab))


def test_log_out_everywhere_ends_every_session(web, people):
    owner = Visitor(web)
    owner.login(people.superuser.email)
    thief = owner.copy(web)
    laptop = Visitor(web)  # a separate login on another device
    laptop.login(people.superuser.email)

    account = owner.get("/companies")
    assert 'href="/account">My account</a>' in account.text
    page = owner.get("/account")
    assert page.status_code == 200 and "Log out everywhere" in page.text
    assert people.superuser.email in page.text

    done = owner.post("/account/logout-everywhere")
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert str(MSG_LOGGED_OUT_EVERYWHERE) in owner.get("/login").text
    for browser in (owner, thief, laptop):
        assert not logged_in(browser.get("/companies"))
        assert sent_to_login(browser.get("/account"))


def test_a_click_after_the_session_ended_loads_the_login_page_whole(web, people):
    visitor = Visitor(web)
    visitor.login(people.superuser.email)
    token = visitor.token()
    thief = visitor.copy(web)
    visitor.post("/logout", token=token)
    switch = thief.post("/settings/mail", {"_refresh": "1"}, token, {"HX-Request": "true"})
    assert switch.status_code == 204 and switch.headers["HX-Redirect"] == "/login"


def test_a_session_unused_for_longer_than_the_idle_limit_is_refused(serve, people):
    portal = serve(SESSION_IDLE_SECONDS=2)
    visitor = Visitor(portal)
    visitor.login(people.superuser.email)
    for _ in range(6):  # used every half second: alive past the idle limit
        time.sleep(0.5)
        assert logged_in(visitor.get("/companies"))
    time.sleep(2.5)
    assert sent_to_login(visitor.get("/companies"))


def test_a_session_ends_after_its_lifetime_even_when_used(serve, people):
    portal = serve(PERMANENT_SESSION_LIFETIME=3)
    visitor = Visitor(portal)
    visitor.login(people.superuser.email)
    assert logged_in(visitor.get("/companies"))
    deadline = time.time() + 3.5
    while time.time() < deadline:
        time.sleep(0.5)
        visitor.get("/companies")
    assert sent_to_login(visitor.get("/companies"))


def test_logging_in_again_brings_no_fresh_connection_test_allowance(serve, people, mail_server):
    portal = serve(MAIL_TEST_RATE_LIMIT="2 per 10 minutes")
    form = {
        "host": "127.0.0.1",
        "port": str(mail_server.port),
        "security": "none",
        "default_sender_enabled": "y",
        "sender_address": "noreply@example.com",
        "timeout_seconds": "10",
        "retention_days": "30",
        "test_recipient": "check@example.org",
    }
    htmx = {"HX-Request": "true"}
    superuser = Visitor(portal)
    superuser.login(people.superuser.email)
    for _ in range(2):
        assert superuser.post("/settings/mail/test", form, headers=htmx).status_code == 200
        run_jobs(portal)  # the test ends, so the next is not refused as one already running
    superuser.post("/logout")  # a new session generation, the same user
    superuser.login(people.superuser.email)
    assert superuser.post("/settings/mail/test", form, headers=htmx).status_code == 429
    assert len(mail_server.handler.messages) == 2


@pytest.mark.parametrize(
    ("changes", "secure"),
    [
        ({}, False),
        ({"PORTAL_BASE_URL": BASE, "TRUSTED_HOSTS": "portal.test"}, True),
        ({"PORTAL_ENV": "production", "PORTAL_BASE_URL": "http://portal.test"}, True),
    ],
    ids=["http-demo", "https-base-url", "production"],
)
def test_the_session_cookie_is_secure_in_production_and_behind_https(
    serve, people, changes, secure
):
    portal = serve(**changes)
    visitor = Visitor(portal, scheme="https")
    response = visitor.post("/login", {"email": people.superuser.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie
    assert ("Secure" in cookie) is secure


# --- 5. security headers on every page --------------------------------------------------


def _get_routes() -> list[str]:
    """Every GET rule of the app, built from a throwaway app: its URL map is all we read."""
    with tempfile.TemporaryDirectory() as instance:
        built = create_app(
            {
                "INSTANCE_PATH": instance,
                "SECRET_KEY": "routes",
                "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "REDIS_URL": "redis://127.0.0.1:1/0",
            }
        )
        return sorted({rule.rule for rule in built.url_map.iter_rules() if "GET" in rule.methods})


@pytest.fixture
def sample_mail(people) -> OutboxMessage:
    row = OutboxMessage(
        company_id=people.acme.id,
        message_id="<hardening@example.com>",
        envelope_from="noreply@example.com",
        recipients=["someone@example.org"],
        subject="Hello",
        raw=b"Subject: Hello\r\n\r\nHi\r\n",
    )
    db.session.add(row)
    db.session.commit()
    return row


@pytest.mark.parametrize("rule", _get_routes())
def test_every_page_carries_the_security_headers(as_superuser, people, sample_mail, rule):
    values = {
        "filename": "app.css",
        "token": "not-a-token",
        "company_id": people.acme.id,
        "name": "not-caught",
        "message_id": sample_mail.id,
        "test_id": "not-a-test",
        "number": 1,
    }
    path = re.sub(r"<(?:[a-z]+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule)
    response = as_superuser.get(path)
    response.close()  # a static file is streamed
    assert response.status_code < 500, path
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)


def test_refusals_and_the_api_carry_the_security_headers_too(web, people):
    client = web.test_client()
    answers = [
        client.post("/login", data={}),  # CSRF refused
        client.get("/api/v1/messages/1"),  # no key: 401 JSON
        client.get("/no-such-page"),
    ]
    assert [a.status_code for a in answers] == [400, 401, 404]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value


# --- 6. a fresh CSRF secret at login ----------------------------------------------------


def test_the_csrf_token_from_before_login_is_refused_after_it(web, people):
    visitor = Visitor(web)
    before = visitor.token()  # what a planted pre-login session would know
    assert visitor.login(people.superuser.email).status_code == 302
    after = visitor.token()
    assert after != before
    planted = visitor.post("/settings/mail", {"host": "evil.example.com"}, token=before)
    assert planted.status_code == 400 and "CSRF" in planted.text
    assert visitor.post("/account/logout-everywhere", token=before).status_code == 400
    assert logged_in(visitor.get("/companies"))  # nothing happened
    assert visitor.post("/account/logout-everywhere", token=after).status_code == 302


# --- 10. a private instance directory ---------------------------------------------------


# Nothing from the environment: the database, the keys and Redis all made under instance/.
OWN_FILES = {"DATABASE_URL": None, "SECRET_KEY": None, "PORTAL_ENCRYPTION_KEYS": None}
OWN_FILES |= {"REDIS_URL": None}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_instance_directory_and_its_files_are_private(tmp_path):
    instance = tmp_path / "instance"
    previous = os.umask(0o022)  # the usual login umask
    try:
        portal = create_app({"INSTANCE_PATH": str(instance), **OWN_FILES})
        with portal.app_context():
            upgrade()
            db.engine.dispose()
        redis = redis_client.connect(str(instance))  # the embedded Redis, as web and worker
        try:
            redis.save()
            socket_mode = mode(instance / "redis.sock")
        finally:
            redis.shutdown(nosave=True)
    finally:
        os.umask(previous)
    assert mode(instance) == 0o700
    for name in ("portal.db", "secret_key", "encryption.keys", "redis.db"):
        assert mode(instance / name) == 0o600, name
    assert socket_mode & 0o077 == 0


def test_an_existing_world_readable_instance_directory_is_closed(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    instance.chmod(0o755)
    previous = os.umask(0o022)
    try:
        create_app({"INSTANCE_PATH": str(instance), **OWN_FILES})
    finally:
        os.umask(previous)
    assert mode(instance) == 0o700
