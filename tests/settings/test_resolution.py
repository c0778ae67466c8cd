import dataclasses

import pytest
from support.factories import mail_config

from portal.extensions import db
from portal.settings.resolution import DEFAULTS, env_seed, resolve


@pytest.fixture
def global_config(app):
    return mail_config(
        host="smtp.global.example.com",
        port=587,
        security="starttls",
        auth_enabled=True,
        username="global-user",
        password_encrypted="global-token",
        default_sender_enabled=True,
        sender_address="noreply@global.example.com",
        sender_name="Global",
        all_use_default_sender=True,
        group_sends=True,
        timeout_seconds=60,
        reply_to="help@global.example.com",
        footer_html="<p>Global footer</p>",
        footer_text="Global footer",
    )


@pytest.fixture
def acme_config(people):
    return mail_config(
        people.acme,
        host="smtp.acme.example.com",
        port=465,
        security="ssl",
        auth_enabled=False,
        sender_address="mail@acme.example.com",
        sender_name="Acme",
        group_sends=False,
        timeout_seconds=30,
    )


def test_nothing_saved_gives_defaults(app, people):
    effective = resolve(people.acme)
    assert effective.port == 25 and effective.timeout_seconds == 180
    assert effective.security == "none" and effective.host is None
    assert set(effective.sources.values()) == {"default"}


def test_global_values_apply_to_every_company(global_config, people):
    for company in (people.acme, people.globex, None):
        effective = resolve(company)
        assert effective.host == "smtp.global.example.com"
        assert effective.source("host") == "global"


def test_company_settings_are_ignored_until_enabled(global_config, acme_config, people):
    assert resolve(people.acme).host == "smtp.global.example.com"


def test_enabled_company_wins_for_that_company_only(global_config, acme_config, people):
    people.acme.use_own_mail_settings = True
    db.session.commit()
    acme, globex = resolve(people.acme), resolve(people.globex)
    assert (acme.host, acme.port, acme.security) == ("smtp.acme.example.com", 465, "ssl")
    assert acme.auth_enabled is False and acme.password_encrypted is None
    assert acme.timeout_seconds == 30 and acme.group_sends is False
    assert acme.source("host") == acme.source("auth_enabled") == "company"
    assert globex.host == "smtp.global.example.com" and globex.source("host") == "global"


def test_per_field_sources_mix_company_global_and_default(app, acme_config, people):
    people.acme.use_own_mail_settings = True
    mail_config(host="smtp.global.example.com", reply_to="help@global.example.com")
    effective = resolve(people.acme)
    assert effective.source("host") == "company"
    # Optional fields a company leaves empty keep the global value.
    assert effective.reply_to == "help@global.example.com"
    assert effective.source("reply_to") == "global"
    assert effective.source("footer_html") == "default"
    # Global-only fields never come from a company; the saved global row sets them.
    assert effective.source("default_sender_enabled") == "global"


def test_global_only_fields_come_from_global(global_config, acme_config, people):
    people.acme.use_own_mail_settings = True
    db.session.commit()
    effective = resolve(people.acme)
    assert effective.default_sender_enabled is True and effective.all_use_default_sender is True
    assert effective.source("all_use_default_sender") == "global"


def test_snapshot_is_immutable_and_hides_the_secret(global_config, people):
    effective = resolve(people.acme)
    with pytest.raises(dataclasses.FrozenInstanceError):
        effective.host = "elsewhere.example.com"
    with pytest.raises(TypeError):
        effective.sources["host"] = "company"
    assert "global-token" not in repr(effective)


def test_every_default_has_a_source(app):
    assert set(resolve(None).sources) == set(DEFAULTS)


def test_environment_seeds_the_installer_values(monkeypatch):
    monkeypatch.setenv("MAIL_HOST", "SMTP.Example.COM")
    monkeypatch.setenv("MAIL_SECURITY", "SSL-TLS")
    monkeypatch.setenv("MAIL_USERNAME", "mailer")
    monkeypatch.setenv("MAIL_FROM", "noreply@example.com")
    monkeypatch.delenv("MAIL_PORT", raising=False)
    seed = env_seed()
    assert seed == {
        "host": "smtp.example.com",
        "security": "ssl",
        "port": 465,
        "auth_enabled": True,
        "username": "mailer",
        "default_sender_enabled": True,
        "sender_address": "noreply@example.com",
    }


def test_a_company_row_without_parallel_connections_gets_the_default_never_none(
    global_config, acme_config, people
):
    # Rows saved before the column existed hold NULL; a cap of NULL would open no session.
    global_config.max_sessions = 7
    people.acme.use_own_mail_settings = True
    db.session.commit()
    acme = resolve(people.acme)
    assert (
        acme.max_sessions == DEFAULTS["max_sessions"] and acme.source("max_sessions") == "default"
    )
    acme_config.max_sessions = 5
    db.session.commit()
    acme = resolve(people.acme)
    assert acme.max_sessions == 5 and acme.source("max_sessions") == "company"
    assert resolve(people.globex).max_sessions == 7


# --- per group: a company overrides some groups and follows the global settings in the rest ---

ONLY = {
    "server": ("host", "port", "security", "timeout_seconds"),
    "sender": ("sender_address", "sender_name"),
    "delivery": ("group_sends",),
}


def _override(company, *groups):
    """The company's row overrides these groups only, and is in use."""
    flags = {f"override_{g}": g in groups for g in ("server", "auth", "sender", "delivery")}
    mail_config(company, **flags)
    company.use_own_mail_settings = True
    db.session.commit()


@pytest.mark.parametrize("group", ["sender", "delivery"])
def test_an_overridden_group_is_the_companys_and_every_other_group_global(
    global_config, acme_config, people, group
):
    _override(people.acme, group)
    effective = resolve(people.acme)
    for name in ONLY[group]:
        assert effective.source(name) == "company"
        assert getattr(effective, name) == getattr(acme_config, name)
    others = [name for g, names in ONLY.items() if g != group for name in names]
    assert all(effective.source(name) == "global" for name in others)
    assert effective.overrides == {group}


def test_overriding_the_sender_name_only_keeps_the_global_server_and_password(
    global_config, acme_config, people
):
    _override(people.acme, "sender")
    effective = resolve(people.acme)
    assert (effective.host, effective.username) == ("smtp.global.example.com", "global-user")
    assert effective.password_encrypted == "global-token"
    assert effective.source("password_encrypted") == "global"
    assert effective.auth_config_id == global_config.id
    assert effective.sender_name == "Acme" and effective.source("sender_name") == "company"


def test_a_later_global_host_change_applies_to_a_company_following_the_server(
    global_config, acme_config, people
):
    _override(people.acme, "sender")
    mail_config(host="smtp2.global.example.com")
    assert resolve(people.acme).host == "smtp2.global.example.com"


def test_a_company_server_always_brings_the_companys_own_authentication(
    global_config, acme_config, people
):
    # Even a row that says it follows the global authentication: the global password never
    # goes to a host the company chose.
    _override(people.acme, "server")
    effective = resolve(people.acme)
    assert effective.host == "smtp.acme.example.com"
    assert effective.password_encrypted is None and effective.auth_enabled is False
    assert effective.source("password_encrypted") != "global"
    assert effective.source("username") != "global"
    assert effective.auth_config_id == acme_config.id
    assert effective.overrides == {"server", "auth"}


def test_own_authentication_over_the_global_server(global_config, acme_config, people):
    mail_config(people.acme, auth_enabled=True, username="acme-user", password_encrypted="acme")
    _override(people.acme, "auth")
    effective = resolve(people.acme)
    assert effective.host == "smtp.global.example.com" and effective.source("host") == "global"
    assert (effective.username, effective.password_encrypted) == ("acme-user", "acme")
    assert effective.auth_config_id == acme_config.id


def test_a_company_following_every_group_gets_exactly_the_global_settings(
    global_config, acme_config, people
):
    _override(people.acme)
    effective = resolve(people.acme)
    assert "company" not in effective.sources.values() and effective.overrides == set()
    assert dataclasses.replace(effective, company_id=None) == resolve(None)
