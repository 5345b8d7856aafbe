"""deletion protection and sync schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 03:07:27.025237
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_deletions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=10), nullable=False),
    sa.Column('object_id', sa.String(length=40), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('directory_id', 'object_type', 'object_id')
    )
    with op.batch_alter_table('held_deletions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_deletions_directory_id'), ['directory_id'], unique=False)

    with op.batch_alter_table('directories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deletion_threshold_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('deletion_threshold_percent', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('sync_interval_seconds', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('directories', schema=None) as batch_op:
        batch_op.drop_column('sync_interval_seconds')
        batch_op.drop_column('deletion_threshold_percent')
        batch_op.drop_column('deletion_threshold_count')

    with op.batch_alter_table('held_deletions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_deletions_directory_id'))

    op.drop_table('held_deletions')
