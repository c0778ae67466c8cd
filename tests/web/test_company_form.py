"""The Email tab group by group: "Use global" or "Override", the marks, what is saved."""

import pytest
from sqlalchemy import select
from support.factories import global_with_password, mail_config
from support.forms import at_field, company_url

from portal.extensions import db
from portal.models import AuditEntry, MailConfig
from portal.settings.resolution import resolve
from portal.settings.saving import MSG_PASSWORD_NEEDED

GROUPS = ("server", "auth", "sender", "delivery")


@pytest.fixture
def glob(app):
    return global_with_password(timeout_seconds=60)


def tab(*overridden, **fields) -> dict:
    """The tab as posted with these groups on "Override" and their inputs shown."""
    data = {f"override_{g}": "company" if g in overridden else "global" for g in GROUPS}
    return {**data, "shown": list(overridden), **fields}


def sender_only(**fields) -> dict:
    sender = {"sender_address": "noreply@example.com", "sender_name": "Acme Billing"}
    return tab("sender", **{**sender, **fields})


def own_row(company) -> MailConfig | None:
    db.session.expire_all()
    return db.session.scalar(select(MailConfig).where(MailConfig.company_id == company.id))


def audits(company) -> list[dict]:
    query = select(AuditEntry).where(AuditEntry.company_id == company.id).order_by(AuditEntry.id)
    return [entry.changes for entry in db.session.scalars(query)]


def test_overriding_only_the_sender_name_needs_no_password(as_acme, glob, people):
    response = as_acme.post(company_url(people.acme), sender_only(), htmx=True)
    assert response.status_code == 200, response.text
    assert "Mail settings saved." in response.text
    row = own_row(people.acme)
    assert (row.override_server, row.override_auth, row.override_sender) == (False, False, True)
    assert row.password_encrypted is None and people.acme.use_own_mail_settings is True
    effective = resolve(people.acme)
    assert effective.sender_name == "Acme Billing" and effective.source("sender_name") == "company"
    assert effective.host == "smtp.example.com" and effective.source("host") == "global"
    assert effective.password_encrypted == glob.password_encrypted


def test_the_tab_marks_each_group_with_the_source_of_its_values(as_acme, glob, people):
    as_acme.post(company_url(people.acme), sender_only(), htmx=True)
    page = as_acme.get(company_url(people.acme)).text
    assert page.count('data-source="company"') == 1 and page.count('data-source="global"') == 3
    assert 'id="group-sender" data-source="company"' in page and ">This company<" in page
    assert 'value="Acme Billing"' in at_field(page, "sender_name")
    assert 'name="host"' not in page and "smtp.example.com" in page
    assert "a password is saved" in page and "global-secret-password" not in page


def test_the_change_is_audited_with_old_and_new_values(as_acme, glob, people):
    as_acme.post(company_url(people.acme), sender_only(), htmx=True)
    (changes,) = audits(people.acme)
    assert changes["override_sender"] == {"old": False, "new": True}
    assert changes["sender_name"] == {"old": None, "new": "Acme Billing"}
    assert changes["use_own_mail_settings"] == {"old": False, "new": True}
    assert "override_server" not in changes and "host" not in changes


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sender_address", "not an address", "valid"),
        ("sender_address", "", "Enter the sender address."),
        ("sender_name", "two\nlines", "Line breaks"),
    ],
)
def test_bad_input_in_an_overridden_group_is_refused_at_the_field_and_nothing_saved(
    as_acme, glob, people, field, value, message
):
    response = as_acme.post(company_url(people.acme), sender_only(**{field: value}), htmx=True)
    assert response.status_code == 422
    assert message in at_field(response.text, field)
    assert "Nothing was saved" in response.text
    assert own_row(people.acme) is None and audits(people.acme) == []
    assert people.acme.use_own_mail_settings is False


def test_inputs_of_a_group_the_company_follows_are_neither_checked_nor_saved(as_acme, glob, people):
    data = sender_only(host="bad host!", timeout_seconds="5", username="someone")
    assert as_acme.post(company_url(people.acme), data, htmx=True).status_code == 200
    row = own_row(people.acme)
    assert row.host is None and row.username is None and row.timeout_seconds != 5
    assert resolve(people.acme).host == "smtp.example.com"


def test_going_back_to_the_global_sender(as_acme, glob, people):
    as_acme.post(company_url(people.acme), sender_only(), htmx=True)
    response = as_acme.post(company_url(people.acme), tab(), htmx=True)
    assert response.status_code == 200 and 'data-source="company"' not in response.text
    assert own_row(people.acme).override_sender is False
    assert people.acme.use_own_mail_settings is False
    assert resolve(people.acme).sender_name == "Example"
    assert audits(people.acme)[-1]["override_sender"] == {"old": True, "new": False}


def test_choosing_override_shows_the_group_filled_with_the_values_in_force(as_acme, glob, people):
    data = {**tab(), "override_sender": "company", "_refresh": "override"}
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 200
    assert 'value="noreply@example.com"' in at_field(response.text, "sender_address")
    assert 'value="Example"' in at_field(response.text, "sender_name")
    assert own_row(people.acme) is None  # a choice, not a save


def test_override_chosen_without_scripts_shows_the_inputs_before_saving(as_acme, glob, people):
    data = {**tab(), "override_sender": "company"}  # Save pressed: the inputs were not shown
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 200 and 'name="sender_name"' in response.text
    assert own_row(people.acme) is None


def test_a_company_server_needs_its_own_password_never_the_global_one(as_acme, glob, people):
    data = tab(
        "server",
        host="smtp.attacker.example",
        port="587",
        security="starttls",
        timeout_seconds="30",
        max_sessions="2",
        auth_enabled="y",
        username="mailer",
    )
    data["shown"] = ["server", "auth"]
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 422
    assert MSG_PASSWORD_NEEDED in response.text.split('id="password-control"')[1]
    assert own_row(people.acme) is None


def test_overriding_the_server_locks_authentication_to_the_company(as_acme, glob, people):
    data = {**tab(), "override_server": "company", "_refresh": "override"}
    page = as_acme.post(company_url(people.acme), data, htmx=True).text
    assert 'id="group-auth" data-source="company"' in page
    assert "the global password is never sent to another server" in page
    assert 'name="password"' in page and "A password is saved" not in page


def test_following_the_global_authentication_again_forgets_the_companys_password(
    as_acme, glob, people
):
    mail_config(people.acme, auth_enabled=True, username="acme", password_encrypted="x")
    data = tab("auth", "sender", auth_enabled="y", username="acme", password="acme-password")
    data.update(sender_address="noreply@example.com", sender_name="Acme")
    assert as_acme.post(company_url(people.acme), data, htmx=True).status_code == 200
    assert own_row(people.acme).has_password
    as_acme.post(company_url(people.acme), sender_only(), htmx=True)
    assert not own_row(people.acme).has_password
    assert audits(people.acme)[-1]["password"] == "removed"


def test_another_companys_tab_answers_404(as_acme, glob, people):
    url = company_url(people.globex)
    assert as_acme.get(url).status_code == 404
    assert as_acme.post(url, sender_only(), htmx=True).status_code == 404
    assert own_row(people.globex) is None
