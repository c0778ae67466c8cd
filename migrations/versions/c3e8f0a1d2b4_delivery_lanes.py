"""delivery lanes

Lanes per SMTP destination, fencing tokens on claims, sessions per lane and their cap.

Revision ID: c3e8f0a1d2b4
Revises: b7d2e4f19a30
Create Date: 2026-12-02 13:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3e8f0a1d2b4'
down_revision = 'b7d2e4f19a30'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_outbox_messages_lane_status', ['lane', 'status'], unique=False)
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_sessions', sa.Integer(), nullable=True))
    op.create_table(
        'delivery_sessions',
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('lane', sa.String(length=64), nullable=False),
        sa.Column('worker', sa.String(length=200), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('token'),
    )
    with op.batch_alter_table('delivery_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_sessions_lane'), ['lane'], unique=False)


def downgrade():
    with op.batch_alter_table('delivery_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_sessions_lane'))
    op.drop_table('delivery_sessions')
    with op.batch_alter_table('mail_configs', schema=None) as batch_op:
        batch_op.drop_column('max_sessions')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_lane_status')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('lane')
