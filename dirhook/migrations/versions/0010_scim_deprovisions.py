"""SCIM deletion protection: deprovisions on their way, hidden deleted users

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 11:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scim_deprovisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_scim_deprovisions_state', 'scim_deprovisions', ['directory_id', 'state'], unique=False)
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hidden_since', sa.DateTime(timezone=True), nullable=True))
        # Listings skip hidden users: the page index carries the column, so an OFFSET skips
        # rows inside the index without reading the table.
        batch_op.drop_index('ix_scim_resources_order')
        batch_op.create_index('ix_scim_resources_order', ['directory_id', 'resource_type', 'id', 'hidden_since'])


def downgrade() -> None:
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.drop_index('ix_scim_resources_order')
        batch_op.create_index('ix_scim_resources_order', ['directory_id', 'resource_type', 'id'])
        batch_op.drop_column('hidden_since')
    op.drop_index('ix_scim_deprovisions_state', table_name='scim_deprovisions')
    op.drop_table('scim_deprovisions')
