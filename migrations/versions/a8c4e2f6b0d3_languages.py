"""languages

A user's own language and a company's default language for its admins.

Revision ID: a8c4e2f6b0d3
Revises: f2c6d8a4b1e7
Create Date: 2026-12-03 16:10:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a8c4e2f6b0d3'
down_revision = 'f2c6d8a4b1e7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('default_language', sa.String(length=8), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_column('default_language')
