"""outbox test mails

The mail log marks the test mails an admin queued from the mail settings screens.

Revision ID: b7d2e5f8a9c1
Revises: f2b6c8d4a1e3
Create Date: 2026-12-03 07:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d2e5f8a9c1'
down_revision = 'f2b6c8d4a1e3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('is_test', sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('is_test')
