"""SCIM directories: their resources and bearer token

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 04:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scim_resources',
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=20), nullable=False),
    sa.Column('match_key', sa.String(length=512), nullable=True),
    sa.Column('unique_key', sa.String(length=512), nullable=True),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('directory_id', 'id'),
    sa.UniqueConstraint('directory_id', 'resource_type', 'unique_key')
    )
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.create_index('ix_scim_resources_match', ['directory_id', 'resource_type', 'match_key'], unique=False)
        batch_op.create_index('ix_scim_resources_external', ['directory_id', 'resource_type', 'external_id'],
                              unique=False)
    with op.batch_alter_table('directories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scim_token_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('directories', schema=None) as batch_op:
        batch_op.drop_column('scim_token_digest')
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.drop_index('ix_scim_resources_external')
        batch_op.drop_index('ix_scim_resources_match')
    op.drop_table('scim_resources')
