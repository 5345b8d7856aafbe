"""Google Workspace push channels and the notifications they brought

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('google_channels',
    sa.Column('channel_id', sa.String(length=64), nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=255), nullable=False),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id')
    )
    op.create_index('ix_google_channels_directory_id', 'google_channels', ['directory_id'], unique=False)
    op.create_table('google_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('object_key', sa.String(length=320), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_google_notifications_directory', 'google_notifications', ['directory_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_google_notifications_directory', table_name='google_notifications')
    op.drop_table('google_notifications')
    op.drop_index('ix_google_channels_directory_id', table_name='google_channels')
    op.drop_table('google_channels')
