"""Parallel connections on the global page and the Email tab: shown, inherited, saved, untested."""

import re

import pytest
from sqlalchemy import select
from support.connection_tests import finished_panel
from support.factories import allow_test_server, mail_config
from support.forms import GLOBAL_URL, VALID, at_field, company_data, company_url, saved_global

from portal.extensions import db
from portal.models import AuditEntry

HINT = (
    "How many SMTP connections the worker may open to this server at once. A slow or hanging "
    "server holds at most these; other companies' mail is not held up."
)


def history(page: str) -> str:
    return page.split("Last changes")[1]


def test_the_field_sits_below_the_timeout_with_the_default_and_its_hint(as_superuser):
    # A global row saved before the column existed holds no value: the form shows the default.
    mail_config(host="smtp.example.com")
    page = as_superuser.get(GLOBAL_URL).text
    assert page.index('id="field-timeout_seconds"') < page.index('id="field-max_sessions"')
    field = at_field(page, "max_sessions")
    assert ">Parallel connections</label>" in field and 'value="2"' in field
    assert HINT in field


@pytest.mark.parametrize(("saved", "shown", "badge"), [(5, "5", "Global"), (None, "2", "Default")])
def test_an_inheriting_company_sees_the_value_in_force_and_where_it_comes_from(
    as_acme, people, saved, shown, badge
):
    # None: a global row saved before the column existed.
    mail_config(host="smtp.example.com", max_sessions=saved)
    page = as_acme.get(company_url(people.acme)).text
    row = re.search(r'data-field="max_sessions">(.*?)</div>', page, re.S).group(1)
    assert "<dt>Parallel connections</dt>" in row
    mark = f'<span class="badge source-badge {badge.lower()}">{badge}</span>'
    assert f"<dd>{shown} {mark}</dd>" in row


def test_the_superuser_saves_five_and_the_history_shows_two_to_five(as_superuser, people):
    assert as_superuser.post(GLOBAL_URL, VALID, htmx=True).status_code == 200
    response = as_superuser.post(
        GLOBAL_URL, {**VALID, "password": "", "max_sessions": "5"}, htmx=True
    )
    assert response.status_code == 200 and "Mail settings saved." in response.text
    assert saved_global().max_sessions == 5
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.actor_id == people.superuser.id and entry.company_id is None
    assert entry.changes == {"max_sessions": {"old": 2, "new": 5}}
    change = r'Parallel connections</strong>:\s*<span class="old">2</span> →\s*<span class="new">5<'
    assert re.search(change, history(as_superuser.get(GLOBAL_URL).text))


def test_a_company_saves_its_own_five_and_the_global_value_stays(as_acme, people):
    mail_config(host="smtp.example.com", max_sessions=3)
    response = as_acme.post(company_url(people.acme), company_data(max_sessions="5"), htmx=True)
    assert response.status_code == 200 and "Mail settings saved." in response.text
    db.session.expire_all()
    assert people.acme.mail_config.max_sessions == 5 and saved_global().max_sessions == 3
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.company_id == people.acme.id))
    assert entries.one().changes["max_sessions"] == {"old": 2, "new": 5}
    page = as_acme.get(company_url(people.acme)).text
    assert 'value="5"' in at_field(page, "max_sessions")
    assert "Parallel connections" in history(page)


@pytest.mark.parametrize("value", ["0", "21", "abc", None])
def test_a_connection_test_runs_whatever_the_field_holds(as_superuser, server, value):
    allow_test_server(server.port)
    form = {**VALID, "host": "127.0.0.1", "port": str(server.port), "security": "none"}
    form.update(test_recipient="check@example.org", max_sessions=value)
    # No authentication; None: a page loaded before the field existed does not post it at all.
    unsent = ["auth_enabled", "username", "password"] + (["max_sessions"] if value is None else [])
    for name in unsent:
        form.pop(name)
    response = finished_panel(as_superuser, "/settings/mail/test", form)
    assert response.status_code == 200, response.text
    assert "Correct these fields first" not in response.text
    (arrived,) = server.handler.messages
    assert arrived.rcpt_tos == ["check@example.org"]
