"""SCIM at scale: group members as rows, indexed filter values, paging indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00
"""

from alembic import op
import sqlalchemy as sa

from dirhook.scim.index import indexed_values, member_rows, version_of


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scim_members',
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('member_type', sa.String(length=10), nullable=True),
    sa.Column('display', sa.String(length=512), nullable=True),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('directory_id', 'group_id', 'member_id')
    )
    op.create_index('ix_scim_members_member', 'scim_members', ['directory_id', 'member_id'], unique=False)
    op.create_table('scim_values',
    sa.Column('directory_id', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('attribute', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['directory_id'], ['directories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('directory_id', 'resource_id', 'attribute', 'value')
    )
    op.create_index('ix_scim_values_lookup', 'scim_values', ['directory_id', 'attribute', 'value'], unique=False)
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('members_revision', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_scim_resources_order', ['directory_id', 'resource_type', 'id'], unique=False)
        batch_op.create_index('ix_scim_resources_modified', ['directory_id', 'resource_type', 'updated_at'],
                              unique=False)
    _move_members_out_of_bodies()


def _move_members_out_of_bodies() -> None:
    """Members leave the group bodies for scim_members; users' filter values are indexed."""
    conn = op.get_bind()
    resources = sa.table('scim_resources', sa.column('directory_id'), sa.column('id'), sa.column('resource_type'),
                         sa.column('body', sa.JSON()), sa.column('version'), sa.column('members_revision'))
    members = sa.table('scim_members', sa.column('directory_id'), sa.column('group_id'), sa.column('member_id'),
                       sa.column('member_type'), sa.column('display'))
    values = sa.table('scim_values', sa.column('directory_id'), sa.column('resource_id'), sa.column('attribute'),
                      sa.column('value'))
    rows = conn.execute(sa.select(resources.c.directory_id, resources.c.id, resources.c.resource_type,
                                  resources.c.body)).all()
    for directory_id, resource_id, resource_type, body in rows:
        if resource_type == 'Group':
            found = member_rows(body.get('members'))
            if found:
                conn.execute(members.insert(), [{'directory_id': directory_id, 'group_id': resource_id, **m}
                                                for m in found.values()])
            body = {k: v for k, v in body.items() if k != 'members'}
            conn.execute(resources.update().where(resources.c.directory_id == directory_id,
                                                  resources.c.id == resource_id)
                         .values(body=body, members_revision=1, version=version_of(body, 1)))
        else:
            pairs = indexed_values(resource_type, body)
            if pairs:
                conn.execute(values.insert(), [{'directory_id': directory_id, 'resource_id': resource_id,
                                                'attribute': a, 'value': v} for a, v in sorted(pairs)])


def downgrade() -> None:
    conn = op.get_bind()  # members go back into the group bodies
    grouped: dict[tuple[str, str], list[dict]] = {}
    for directory_id, group_id, member_id, member_type, display in conn.execute(sa.text(
            'SELECT directory_id, group_id, member_id, member_type, display FROM scim_members')):
        member = {'value': member_id, **({'type': member_type} if member_type else {}),
                  **({'display': display} if display else {})}
        grouped.setdefault((directory_id, group_id), []).append(member)
    resources = sa.table('scim_resources', sa.column('directory_id'), sa.column('id'), sa.column('body', sa.JSON()))
    for (directory_id, group_id), found in grouped.items():
        body = conn.execute(sa.select(resources.c.body).where(resources.c.directory_id == directory_id,
                                                               resources.c.id == group_id)).scalar()
        if body is not None:
            conn.execute(resources.update().where(resources.c.directory_id == directory_id,
                                                  resources.c.id == group_id).values(body={**body, 'members': found}))
    with op.batch_alter_table('scim_resources', schema=None) as batch_op:
        batch_op.drop_index('ix_scim_resources_modified')
        batch_op.drop_index('ix_scim_resources_order')
        batch_op.drop_column('members_revision')
    op.drop_index('ix_scim_values_lookup', table_name='scim_values')
    op.drop_table('scim_values')
    op.drop_index('ix_scim_members_member', table_name='scim_members')
    op.drop_table('scim_members')
