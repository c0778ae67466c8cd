"""outbox sent_at index

The queue dashboard counts the mail sent in the last hour, per minute, from one index range.

Revision ID: e4a7b9c2d1f0
Revises: c3e8f0a1d2b4
Create Date: 2026-12-02 18:50:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e4a7b9c2d1f0'
down_revision = 'c3e8f0a1d2b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_status_sent', ['status', 'sent_at'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_status_sent')
