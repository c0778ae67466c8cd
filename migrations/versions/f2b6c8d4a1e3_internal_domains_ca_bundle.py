"""internal mail domains and a CA bundle per mail configuration

Revision ID: f2b6c8d4a1e3
Revises: f1b3c5d7e9a2
Create Date: 2026-12-03 06:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2b6c8d4a1e3'
down_revision = 'f1b3c5d7e9a2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('internal_domains', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ca_bundle', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        batch_op.drop_column('ca_bundle')
        batch_op.drop_column('internal_domains')
