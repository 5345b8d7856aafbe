"""Retries on the batch path: the endpoint's circuit breaker, due-retry index, stranded rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consecutive_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('breaker_opened_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_probe_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('probes', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_endpoint_due', ['endpoint_id', 'status', 'next_attempt_at'], unique=False)
    # Before this revision a failed delivery was marked retrying and then given a workflow of
    # its own; rows whose workflow never started were left retrying without a time (the
    # stranded deliveries). The dispatcher now sends every retrying row when its time comes:
    # give those rows "now".
    deliveries = sa.table('deliveries', sa.column('status', sa.String), sa.column('next_attempt_at', sa.DateTime))
    op.execute(deliveries.update().where(deliveries.c.status == 'retrying', deliveries.c.next_attempt_at.is_(None))
               .values(next_attempt_at=datetime.now(timezone.utc)))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_endpoint_due')
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_column('probes')
        batch_op.drop_column('next_probe_at')
        batch_op.drop_column('breaker_opened_at')
        batch_op.drop_column('consecutive_failures')
