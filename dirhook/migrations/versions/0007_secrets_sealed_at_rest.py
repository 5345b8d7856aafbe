"""Secrets sealed at rest: the signing-secret columns become text (a sealed value is longer)

The values themselves are sealed by `dirhook migrate` right after this revision, with the
deployment's keyring (``dirhook.db.engine.migrate``): a revision cannot know the keys.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('endpoints', 'endpoint_secrets'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('secret', existing_type=sa.String(200), type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    for table in ('endpoints', 'endpoint_secrets'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('secret', existing_type=sa.Text(), type_=sa.String(200), existing_nullable=False)
