"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from support.factories import mail_config

from portal.extensions import db
from portal.models import MailConfig


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
