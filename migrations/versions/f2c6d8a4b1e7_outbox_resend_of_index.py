"""outbox resend_of index

A mail's detail lists the resends made of it: one index lookup, whatever the size of the outbox.

Revision ID: f2c6d8a4b1e7
Revises: b7d2e5f8a9c1
Create Date: 2026-12-03 07:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f2c6d8a4b1e7'
down_revision = 'b7d2e5f8a9c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_resend_of', ['resend_of_id'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_resend_of')
