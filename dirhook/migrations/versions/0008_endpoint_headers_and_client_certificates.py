"""Endpoints: custom request headers and a client certificate, both sealed at rest

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 20:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headers', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('client_certificate', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_column('client_certificate')
        batch_op.drop_column('headers')
