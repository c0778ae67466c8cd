import pytest
from sqlalchemy import select
from support.factories import mail_config
from support.forms import GLOBAL_URL, VALID, at_field, company_data, company_url, saved_global

from portal import crypto
from portal.extensions import db
from portal.models import AuditEntry
from portal.settings.saving import MSG_PASSWORD_AGAIN, MSG_PASSWORD_NEEDED, MSG_REMOVE_WITH_AUTH

BOUNDS = {"timeout_seconds": (10, 180), "port": (1, 65535), "max_sessions": (1, 20)}


@pytest.fixture
def saved(as_superuser):
    response = as_superuser.post(GLOBAL_URL, VALID, htmx=True)
    assert response.status_code == 200, response.text
    return saved_global()


def test_valid_input_is_saved_and_confirmed(as_superuser):
    response = as_superuser.post(GLOBAL_URL, VALID, htmx=True)
    assert response.status_code == 200
    assert "Mail settings saved." in response.text
    config = saved_global()
    assert (config.host, config.port, config.security) == ("smtp.example.com", 587, "starttls")
    assert config.timeout_seconds == 60 and config.sender_name == "Example"


def test_plain_form_post_redirects_after_saving(as_superuser):
    response = as_superuser.post(GLOBAL_URL, VALID)
    assert response.status_code == 302
    assert "Mail settings saved." in as_superuser.get(GLOBAL_URL).text


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("timeout_seconds", "9", False),
        ("timeout_seconds", "10", True),
        ("timeout_seconds", "180", True),
        ("timeout_seconds", "181", False),
        ("timeout_seconds", "", False),
        ("timeout_seconds", "1e2", False),
        ("port", "0", False),
        ("port", "1", True),
        ("port", "65535", True),
        ("port", "65536", False),
        ("port", "-25", False),
        ("port", "abc", False),
        ("max_sessions", "0", False),
        ("max_sessions", "1", True),
        ("max_sessions", "20", True),
        ("max_sessions", "21", False),
        ("max_sessions", "abc", False),
        ("max_sessions", "", False),
    ],
)
def test_number_bounds(as_superuser, field, value, ok):
    response = as_superuser.post(GLOBAL_URL, {**VALID, field: value}, htmx=True)
    assert response.status_code == (200 if ok else 422)
    lo, hi = BOUNDS[field]
    message = f"Enter a whole number from {lo} to {hi}."
    assert (message in at_field(response.text, field)) is not ok
    assert (saved_global() is not None and saved_global().host == "smtp.example.com") is ok


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("host", "", "Enter the SMTP host."),
        ("host", "smtp..example.com", "Enter a host name"),
        ("host", "-smtp.example.com", "Enter a host name"),
        ("host", "smtp_example.com", "Enter a host name"),
        ("host", "0177.0.0.1", "Enter a host name"),
        ("host", "smtp.example.com\r\nRCPT TO:<x@y>", "Line breaks"),
        ("username", "", "Enter the user name"),
        ("username", "mailer\nMAIL FROM:<x@y>", "Line breaks"),
        ("sender_address", "not-an-address", "Enter a valid email address"),
        ("sender_address", "", "Enter the sender address."),
        ("sender_address", "a@b.com\r\nBcc: evil@example.com", "Line breaks"),
        ("sender_name", "Name\r\nBcc: evil@example.com", "Line breaks"),
        ("reply_to", "reply@", "Enter a valid email address"),
        ("password", "pass\r\nword", "Line breaks"),
        ("footer_html", "<p>a\x00b</p>", "NUL characters"),
        ("security", "plaintext", "Not a valid choice"),
    ],
)
def test_bad_input_gets_a_message_at_the_field_and_saves_nothing(
    as_superuser, field, value, message
):
    response = as_superuser.post(GLOBAL_URL, {**VALID, field: value}, htmx=True)
    assert response.status_code == 422
    assert f'id="field-{field}"' in response.text or field == "password"
    assert message in response.text
    assert "Nothing was saved" in response.text
    config = saved_global()
    assert config is None or config.host is None
    assert db.session.scalar(select(AuditEntry)) is None


def test_non_htmx_invalid_post_renders_the_whole_page_with_422(as_superuser):
    response = as_superuser.post(GLOBAL_URL, {**VALID, "timeout_seconds": "200"})
    assert response.status_code == 422
    assert "<html" in response.text and "Enter a whole number from 10 to 180." in response.text


def test_values_are_normalised(as_superuser):
    data = {**VALID, "host": " SMTP.Example.COM. ", "sender_address": "NoReply@EXAMPLE.com"}
    assert as_superuser.post(GLOBAL_URL, data, htmx=True).status_code == 200
    config = saved_global()
    assert config.host == "smtp.example.com"
    assert config.sender_address == "NoReply@example.com"


@pytest.mark.parametrize("host", ["192.0.2.10", "2001:db8::25", "[2001:db8::25]", "localhost"])
def test_ip_literals_and_single_label_hosts_are_accepted(as_superuser, host):
    assert as_superuser.post(GLOBAL_URL, {**VALID, "host": host}, htmx=True).status_code == 200


def test_footer_is_sanitised_and_a_text_version_derived(as_superuser):
    footer = '<p onclick="x()">Acme <b>Ltd</b></p><script>alert(1)</script><a href="https://acme.example.com">Site</a>'
    as_superuser.post(GLOBAL_URL, {**VALID, "footer_html": footer}, htmx=True)
    config = saved_global()
    assert "script" not in config.footer_html and "onclick" not in config.footer_html
    assert "<b>Ltd</b>" in config.footer_html
    assert config.footer_text == "Acme Ltd\nSite (https://acme.example.com)"


@pytest.mark.parametrize("htmx", [True, False])
def test_after_save_the_footer_field_shows_what_was_stored(as_superuser, htmx):
    footer = '<p onclick="x()">Acme</p><script>alert(1)</script>'
    response = as_superuser.post(GLOBAL_URL, {**VALID, "footer_html": footer}, htmx=htmx)
    page = response.text if htmx else as_superuser.get(GLOBAL_URL).text
    shown = at_field(page, "footer_html")
    assert "&lt;p&gt;Acme&lt;/p&gt;" in shown
    assert "script" not in shown and "onclick" not in shown


def test_toggle_refresh_renders_without_saving(as_superuser):
    data = {"host": "smtp.example.com", "port": "25", "security": "none", "_refresh": "1"}
    response = as_superuser.post(GLOBAL_URL, {**data, "auth_enabled": "y"}, htmx=True)
    assert response.status_code == 200
    assert 'name="username"' in response.text and 'name="password"' in response.text
    assert "Enter the" not in response.text  # no validation messages on a refresh
    config = saved_global()
    assert config is None or config.host is None


def test_auth_off_hides_user_and_password(as_superuser):
    response = as_superuser.get(GLOBAL_URL)
    assert 'name="username"' not in response.text and 'name="password"' not in response.text


# --- the write-only password ------------------------------------------------------------


def test_password_is_encrypted_at_rest(saved):
    assert saved.password_encrypted and "first-password" not in saved.password_encrypted
    assert crypto.decrypt(saved.password_encrypted) == "first-password"


def test_form_says_a_password_is_saved_and_never_shows_it(as_superuser, saved):
    page = as_superuser.get(GLOBAL_URL).text
    assert "A password is saved." in page and "Replace" in page
    assert "first-password" not in page and saved.password_encrypted not in page


def test_empty_password_keeps_the_saved_one(as_superuser, saved):
    response = as_superuser.post(
        GLOBAL_URL, {**VALID, "password": "", "sender_name": "New"}, htmx=True
    )
    assert response.status_code == 200
    assert crypto.decrypt(saved_global().password_encrypted) == "first-password"


def test_new_password_replaces_the_saved_one(as_superuser, saved):
    as_superuser.post(GLOBAL_URL, {**VALID, "password": "second-password"}, htmx=True)
    assert crypto.decrypt(saved_global().password_encrypted) == "second-password"


@pytest.mark.parametrize(
    ("field", "value"),
    [("host", "smtp.other.example.com"), ("port", "2525"), ("security", "ssl"), ("username", "x")],
)
def test_password_is_not_carried_to_a_changed_server(as_superuser, saved, field, value):
    data = {**VALID, field: value, "password": ""}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert MSG_PASSWORD_AGAIN in response.text
    config = saved_global()
    assert getattr(config, field) != value  # nothing saved
    response = as_superuser.post(GLOBAL_URL, {**data, "password": "for-the-new-server"}, htmx=True)
    assert response.status_code == 200
    assert crypto.decrypt(saved_global().password_encrypted) == "for-the-new-server"


def test_removing_the_password_is_explicit(as_superuser, saved):
    response = as_superuser.post(
        GLOBAL_URL, {**VALID, "password": "", "remove_password": "y"}, htmx=True
    )
    assert response.status_code == 422 and MSG_REMOVE_WITH_AUTH in response.text
    data = {**VALID, "password": "", "remove_password": "y"}
    del data["auth_enabled"]
    assert as_superuser.post(GLOBAL_URL, data, htmx=True).status_code == 200
    config = saved_global()
    assert config.password_encrypted is None and config.username is None


def test_auth_without_any_password_is_refused(as_superuser):
    response = as_superuser.post(GLOBAL_URL, {**VALID, "password": ""}, htmx=True)
    assert response.status_code == 422 and MSG_PASSWORD_NEEDED in response.text


# --- the company Email tab ----------------------------------------------------------------


def test_tab_off_shows_the_inherited_settings_read_only(as_acme, saved, people):
    page = as_acme.get(company_url(people.acme)).text
    assert page.count('data-source="global"') == 4 and "smtp.example.com" in page
    assert page.count(">Global<") >= 9
    assert 'name="host"' not in page
    assert "a password is saved" in page and "first-password" not in page


def test_switching_on_prefills_from_global_values(as_acme, saved, people):
    mail_config(max_sessions=5)
    response = as_acme.post(company_url(people.acme), {"use_own": "y", "_refresh": "1"}, htmx=True)
    assert response.status_code == 200
    assert 'value="smtp.example.com"' in response.text and 'value="60"' in response.text
    assert 'value="5"' in at_field(response.text, "max_sessions")
    # the global password is not offered to the company
    assert "A password is saved." not in response.text


def test_company_settings_win_for_that_company_only(as_acme, saved, people):
    response = as_acme.post(company_url(people.acme), company_data(), htmx=True)
    assert response.status_code == 200, response.text
    db.session.expire_all()
    assert people.acme.use_own_mail_settings is True
    assert people.acme.mail_config.host == "smtp.acme.example.com"
    assert saved_global().host == "smtp.example.com"
    assert people.globex.mail_config is None


def test_company_cannot_set_global_only_fields_or_other_companies(as_acme, saved, people):
    data = company_data(
        default_sender_enabled="", all_use_default_sender="y", company_id=str(people.globex.id)
    )
    assert as_acme.post(company_url(people.acme), data, htmx=True).status_code == 200
    db.session.expire_all()
    glob = saved_global()
    assert glob.default_sender_enabled is True and glob.all_use_default_sender is False
    assert people.acme.mail_config.company_id == people.acme.id
    assert people.acme.mail_config.all_use_default_sender is False
    assert people.globex.mail_config is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout_seconds", "181"), *(("max_sessions", v) for v in ("0", "21", "abc"))],
)
def test_company_validation_matches_the_global_page(as_acme, people, field, value):
    response = as_acme.post(company_url(people.acme), company_data(**{field: value}), htmx=True)
    assert response.status_code == 422
    lo, hi = BOUNDS[field]
    assert f"Enter a whole number from {lo} to {hi}." in at_field(response.text, field)
    assert "Nothing was saved" in response.text
    assert db.session.scalar(select(AuditEntry)) is None
    db.session.expire_all()
    assert people.acme.use_own_mail_settings is False and people.acme.mail_config is None


def test_switching_off_keeps_the_company_values_for_later(as_acme, saved, people):
    as_acme.post(company_url(people.acme), company_data(), htmx=True)
    response = as_acme.post(company_url(people.acme), {}, htmx=True)
    assert response.status_code == 200 and 'data-source="company"' not in response.text
    db.session.expire_all()
    assert people.acme.use_own_mail_settings is False
    assert people.acme.mail_config.host == "smtp.acme.example.com"
    # Overriding again starts from the values in force: the global ones.
    page = as_acme.post(company_url(people.acme), {"use_own": "y", "_refresh": "1"}, htmx=True)
    assert 'value="smtp.example.com"' in at_field(page.text, "host")


# --- the settings history -----------------------------------------------------------------


def test_changes_are_audited_with_old_and_new_values(as_superuser, saved, people):
    # A password no random CSRF token can contain by chance.
    new_password = "second-password-never-shown"
    as_superuser.post(
        GLOBAL_URL, {**VALID, "timeout_seconds": "90", "password": new_password}, htmx=True
    )
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.actor_id == people.superuser.id and entry.company_id is None
    assert entry.changes == {"timeout_seconds": {"old": 60, "new": 90}, "password": "changed"}
    page = as_superuser.get(GLOBAL_URL).text
    assert "Last changes" in page and "SMTP timeout" in page and new_password not in page


def test_saving_unchanged_values_records_nothing(as_superuser, saved):
    before = len(db.session.scalars(select(AuditEntry)).all())
    as_superuser.post(GLOBAL_URL, {**VALID, "password": ""}, htmx=True)
    assert len(db.session.scalars(select(AuditEntry)).all()) == before


def test_company_history_is_its_own(as_acme, saved, people):
    as_acme.post(company_url(people.acme), company_data(), htmx=True)
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.company_id == people.acme.id))
    (entry,) = entries.all()
    assert entry.changes["use_own_mail_settings"] == {"old": False, "new": True}
    page = as_acme.get(company_url(people.acme)).text
    assert "smtp.acme.example.com" in page.split("Last changes")[1]
    assert "mailer" not in page.split("Last changes")[1]  # the global history is not shown
