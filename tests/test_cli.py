from sqlalchemy import select

from portal import accounts
from portal.demo import SUPERUSER_EMAIL
from portal.extensions import db
from portal.models import Company, User
from portal.settings.resolution import global_config


def test_create_superuser(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-superuser", "--email", "Boss@Example.com"], input="s3cret-pass\ns3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    user = accounts.authenticate("boss@example.com", "s3cret-pass")
    assert user is not None and user.is_superuser


def test_create_company(app):
    result = app.test_cli_runner().invoke(args=["create-company", "Initech"])
    assert result.exit_code == 0 and "Initech" in result.output
    assert db.session.scalar(select(Company).where(Company.name == "Initech")) is not None


def test_demo_seeds_once_and_prints_passwords_once(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert first.output.count("with password") == 3
    email, password = first.output.splitlines()[0].split(" with password ")
    assert email == f"created {SUPERUSER_EMAIL}"
    assert accounts.authenticate(SUPERUSER_EMAIL, password).is_superuser
    assert len(db.session.scalars(select(Company)).all()) == 2
    admins = db.session.scalars(select(User).where(User.company_id.is_not(None))).all()
    assert len(admins) == 2
    config = global_config()
    assert (config.host, config.port, config.default_sender_enabled) == ("127.0.0.1", 1025, True)
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0 and "with password" not in second.output


def test_environment_seeds_global_settings_on_first_use(app, monkeypatch):
    monkeypatch.setenv("MAIL_HOST", "relay.example.com")
    monkeypatch.setenv("MAIL_PORT", "2525")
    monkeypatch.setenv("MAIL_USERNAME", "relay-user")
    monkeypatch.setenv("MAIL_PASSWORD", "relay-password")
    app.test_cli_runner().invoke(args=["demo"])
    config = global_config()
    assert (config.host, config.port, config.username) == ("relay.example.com", 2525, "relay-user")
    from portal import crypto

    assert crypto.decrypt(config.password_encrypted) == "relay-password"
