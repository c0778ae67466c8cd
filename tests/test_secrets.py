"""A saved SMTP password never leaves the server: not in a page, a partial, or a log line."""

import logging
import uuid

import pytest
from sqlalchemy import text
from support.forms import VALID, company_data
from support.web import ACME, ROUTES, SUPER, Browser

from portal.extensions import db


@pytest.fixture
def markers(as_superuser, web, people):
    global_marker, company_marker = f"PW-{uuid.uuid4()}", f"PW-{uuid.uuid4()}"
    saved = as_superuser.post("/settings/mail", {**VALID, "password": global_marker}, htmx=True)
    acme = Browser(web.test_client())
    acme.login(people.acme_admin.email)
    data = company_data(auth_enabled="y", username="acme", password=company_marker)
    saved_company = acme.post(f"/companies/{people.acme.id}/email", data, htmx=True)
    assert saved.status_code == saved_company.status_code == 200
    return global_marker, company_marker, {SUPER: as_superuser, ACME: acme}


def _bodies(markers, people):
    *_, clients = markers
    for role, client in clients.items():
        for method, path, _ in ROUTES:
            if method != "GET":
                continue
            url = path.format(acme=people.acme.id, acme_admin=people.acme_admin.id)
            for htmx in (False, True):
                yield f"{role} GET {url} htmx={htmx}", client.get(url, htmx=htmx).text
    super_client, acme = clients[SUPER], clients[ACME]
    # Responses to saves, refreshes and failed validations too.
    yield (
        "global save",
        super_client.post("/settings/mail", {**VALID, "password": ""}, htmx=True).text,
    )
    yield (
        "global 422",
        super_client.post(
            "/settings/mail", {**VALID, "password": "", "host": "other.example.com"}, htmx=True
        ).text,
    )
    yield (
        "global refresh",
        super_client.post("/settings/mail", {**VALID, "_refresh": "1"}, htmx=True).text,
    )
    url = f"/companies/{people.acme.id}/email"
    yield "company refresh", acme.post(url, {"use_own": "y", "_refresh": "1"}, htmx=True).text
    yield "company off", acme.post(url, {}, htmx=True).text
    yield "company on again", acme.post(url, {"use_own": "y", "_refresh": "1"}, htmx=True).text


def test_saved_passwords_appear_in_no_response(markers, people):
    global_marker, company_marker, _ = markers
    checked = 0
    for name, body in _bodies(markers, people):
        assert global_marker not in body, name
        assert company_marker not in body, name
        checked += 1
    assert checked > 20


def test_saved_passwords_appear_in_no_log_line(caplog, as_superuser, people):
    marker = f"PW-{uuid.uuid4()}"
    with caplog.at_level(logging.DEBUG):
        as_superuser.post("/settings/mail", {**VALID, "password": marker}, htmx=True)
        as_superuser.get("/settings/mail")
    assert marker not in caplog.text


def test_database_holds_only_ciphertext(markers):
    global_marker, company_marker, _ = markers
    rows = db.session.execute(text("SELECT password_encrypted FROM mail_configs")).scalars().all()
    assert len(rows) == 2
    for stored in rows:
        assert global_marker not in stored and company_marker not in stored
