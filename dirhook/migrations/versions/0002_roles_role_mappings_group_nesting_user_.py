"""roles, role mappings, group nesting, user source records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 02:34:17.653642
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'slug')
    )
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roles_organization_id'), ['organization_id'], unique=False)

    op.create_table('role_mappings',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('match', sa.String(length=20), nullable=False),
    sa.Column('pattern', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('directory_id', 'role_id', 'match', 'pattern')
    )
    with op.batch_alter_table('role_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_mappings_directory_id'), ['directory_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_role_mappings_role_id'), ['role_id'], unique=False)

    op.create_table('group_nesting',
    sa.Column('parent_group_id', sa.String(length=40), nullable=False),
    sa.Column('child_group_id', sa.String(length=40), nullable=False),
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['child_group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('parent_group_id', 'child_group_id')
    )
    with op.batch_alter_table('group_nesting', schema=None) as batch_op:
        batch_op.create_index('ix_group_nesting_child', ['child_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_nesting_directory_id'), ['directory_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_record', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('source_record')

    with op.batch_alter_table('group_nesting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_nesting_directory_id'))
        batch_op.drop_index('ix_group_nesting_child')

    op.drop_table('group_nesting')
    with op.batch_alter_table('role_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_mappings_role_id'))
        batch_op.drop_index(batch_op.f('ix_role_mappings_directory_id'))

    op.drop_table('role_mappings')
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_roles_organization_id'))

    op.drop_table('roles')
