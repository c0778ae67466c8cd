"""mail settings per group

A company's own settings row says, per group (server, authentication, sender, delivery),
whether the company sets it or follows the global settings. Companies using their own
settings keep every group; the others follow the global settings in every group.

Revision ID: f1b3c5d7e9a2
Revises: e4a7b9c2d1f0
Create Date: 2026-12-03 06:45:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f1b3c5d7e9a2'
down_revision = 'e4a7b9c2d1f0'
branch_labels = None
depends_on = None

GROUPS = ('override_server', 'override_auth', 'override_sender', 'override_delivery')


def upgrade():
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        for name in GROUPS:
            # A literal default: SQLite then adds the column in place (and PostgreSQL reads '1').
            batch_op.add_column(sa.Column(name, sa.Boolean(), server_default='1', nullable=False))
    inheriting = sa.text(
        'UPDATE mail_configs SET '
        + ', '.join(f'{name} = :off' for name in GROUPS)
        + ' WHERE company_id IN (SELECT id FROM companies WHERE use_own_mail_settings = :off)'
    ).bindparams(off=False)
    op.execute(inheriting)


def downgrade():
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        for name in reversed(GROUPS):
            batch_op.drop_column(name)
