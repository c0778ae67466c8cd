"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from support.factories import mail_config

from portal.app import create_app
from portal.config import database_url as normalize
from portal.extensions import db
from portal.models import Company, MailConfig
from portal.settings.resolution import resolve


# SQLite cannot reflect the expression index; the next test checks it by behaviour.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index"
)
def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_only_one_global_configuration_can_exist(app):
    mail_config(host="a.example.com")
    # Built by hand: the factory would update the global row, and the index must refuse a second.
    db.session.add(MailConfig(host="b.example.com"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert db.session.execute(text("SELECT count(*) FROM mail_configs")).scalar() == 1


def _rows_before_groups(conn) -> None:
    """Two companies with their own rows, one using them and one not, and the global row."""
    now = datetime.now(UTC)
    conn.execute(
        text(
            "INSERT INTO companies (id, name, use_own_mail_settings, created_at) "
            "VALUES (:id, :name, :own, :now)"
        ),
        [
            {"id": 1, "name": "Own", "own": True, "now": now},
            {"id": 2, "name": "Inheriting", "own": False, "now": now},
        ],
    )
    conn.execute(
        text(
            "INSERT INTO mail_configs (company_id, host, port, security, auth_enabled, "
            "default_sender_enabled, all_use_default_sender, group_sends, timeout_seconds, "
            "updated_at) VALUES (:company, :host, 25, 'none', :no, :no, :no, :no, 60, :now)"
        ),
        [
            {"company": None, "host": "global.example.com", "no": False, "now": now},
            {"company": 1, "host": "own.example.com", "no": False, "now": now},
            {"company": 2, "host": "stale.example.com", "no": False, "now": now},
        ],
    )


def test_companies_using_their_own_settings_keep_every_group_the_others_inherit_all(
    app_config, blank_database_url
):
    url = normalize(blank_database_url, None)
    blank = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": url})
    with blank.app_context():
        upgrade(revision="e4a7b9c2d1f0")
        with db.engine.begin() as conn:
            _rows_before_groups(conn)
        upgrade()
        query = text(
            "SELECT company_id, override_server, override_auth, override_sender, "
            "override_delivery FROM mail_configs ORDER BY company_id"
        )
        with db.engine.connect() as conn:
            rows = {r[0]: tuple(bool(v) for v in r[1:]) for r in conn.execute(query)}
        assert rows[1] == (True,) * 4 and rows[2] == (False,) * 4
        own, inheriting = db.session.get(Company, 1), db.session.get(Company, 2)
        assert resolve(own).host == "own.example.com"
        groups = ("host", "auth_enabled", "sender_address", "group_sends")
        assert {resolve(own).source(name) for name in groups} == {"company"}
        assert resolve(inheriting).host == "global.example.com"
        assert "company" not in resolve(inheriting).sources.values()
        db.session.remove()
        db.engine.dispose()
