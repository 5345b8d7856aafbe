"""Users' record and inputs digests, by which a pass recognizes them unchanged

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 00:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and empty: a stored user without digests is computed by the next pass, which
    # stores them.
    # add_column, not a batch: SQLite adds a nullable column in place, no table copy.
    op.add_column('users', sa.Column('record_hash', sa.String(length=32), nullable=True))
    op.add_column('users', sa.Column('inputs_hash', sa.String(length=32), nullable=True))
    op.create_index('ix_users_directory_record_hash', 'users', ['directory_id', 'record_hash'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_users_directory_record_hash', table_name='users')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('inputs_hash')
        batch.drop_column('record_hash')
