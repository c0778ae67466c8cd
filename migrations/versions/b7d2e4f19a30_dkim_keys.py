"""dkim keys

DKIM signing keys per scope (a company or the global settings), sender domain and selector.

Revision ID: b7d2e4f19a30
Revises: a1c299f6586c
Create Date: 2026-12-02 06:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d2e4f19a30'
down_revision = 'a1c299f6586c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'dkim_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=True),
        sa.Column('domain', sa.String(length=253), nullable=False),
        sa.Column('selector', sa.String(length=63), nullable=False),
        sa.Column('algorithm', sa.String(length=16), nullable=False),
        sa.Column('private_key_encrypted', sa.Text(), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('dns_status', sa.String(length=16), nullable=True),
        sa.Column('dns_checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('activated_by_id', sa.Integer(), nullable=True),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['company_id'], ['companies.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['activated_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('company_id', 'domain', 'selector'),
    )
    with op.batch_alter_table('dkim_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dkim_keys_company_id'), ['company_id'], unique=False)


def downgrade():
    with op.batch_alter_table('dkim_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dkim_keys_company_id'))
    op.drop_table('dkim_keys')
