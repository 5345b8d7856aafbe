"""Writing a pass's groups, their nesting and their deletions, with the events they make."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Group, GroupNesting, Membership, User, utcnow
from dirhook.diff import content_hash, previous_attributes
from dirhook.ids import new_id
from dirhook.models import NormalizedGroup
from dirhook.normalize import reference_key
from dirhook.outbox import Outbox
from dirhook.payloads import group_payload, user_payload
from dirhook.sync.context import DirectoryContext
from dirhook.sync.result import chunks


def apply_groups(s: Session, outbox: Outbox, directory_id: str, groups: list[NormalizedGroup]) -> set[str]:
    """Insert or update the groups; returns their ids."""
    directory = outbox.directory
    existing = {
        g.external_id: g
        for g in s.scalars(
            select(Group).where(
                Group.directory_id == directory_id, Group.external_id.in_([g.external_id for g in groups])
            )
        )
    }
    ids = set()
    for g in groups:
        state = {
            "external_id": g.external_id,
            "name": g.name,
            "description": g.description,
            "raw_attributes": g.raw_attributes,
        }
        h = content_hash(state)
        row = existing.get(g.external_id)
        if row is None:
            row = Group(
                id=new_id("grp"),
                directory_id=directory_id,
                external_id=g.external_id,
                source_ref=g.source_ref,
                state=state,
                content_hash=h,
                version=1,
                updated_at=utcnow(),
            )
            s.add(row)
            existing[g.external_id] = row
            outbox.emit("group.created", group_payload(row, directory), object_id=row.id)
        else:
            row.source_ref = g.source_ref
            if row.content_hash != h:
                prev = previous_attributes(row.state, state)
                row.state, row.content_hash = state, h
                row.version += 1
                row.updated_at = utcnow()
                outbox.emit("group.updated", group_payload(row, directory), prev, object_id=row.id)
        ids.add(row.id)
    return ids


def apply_nesting(
    sessions: sessionmaker[Session], ctx: DirectoryContext, directory_id: str, member_refs: dict[str, list[str]]
) -> bool:
    """Replace the child groups of every fetched group with those its member list names;
    returns whether any nesting changed."""
    ref_to_group = {g.source_ref: gid for gid, g in ctx.groups.items() if g.source_ref}
    children_of: dict[str, set[str]] = {}
    for child, parents in ctx.parents.items():
        for parent in parents:
            children_of.setdefault(parent, set()).add(child)
    changed = False
    with sessions.begin() as s:
        for parent, refs in member_refs.items():
            new = {ref_to_group[r] for r in map(reference_key, refs) if r in ref_to_group}
            old = children_of.get(parent, set())
            if old - new:
                s.execute(
                    delete(GroupNesting).where(
                        GroupNesting.parent_group_id == parent, GroupNesting.child_group_id.in_(old - new)
                    )
                )
            if new - old:
                s.add_all(
                    [
                        GroupNesting(parent_group_id=parent, child_group_id=c, directory_id=directory_id)
                        for c in new - old
                    ]
                )
            changed = changed or old != new
    return changed


def members_of(sessions: sessionmaker[Session], group_ids: set[str]) -> set[str]:
    members: set[str] = set()
    if not group_ids:
        return members
    with sessions() as s:
        for part in chunks(sorted(group_ids), 500):
            members.update(s.scalars(select(Membership.user_id).where(Membership.group_id.in_(part))))
    return members


def delete_groups(s: Session, outbox: Outbox, ctx: DirectoryContext, group_ids: set[str]) -> set[str]:
    """Delete the groups (their members get group.user_removed first); returns those members."""
    directory = outbox.directory
    affected: set[str] = set()
    for gid in sorted(group_ids):
        group = s.get(Group, gid)
        if group is None:  # gone already (deleted by the pass's own cascade)
            continue
        members = list(
            s.scalars(select(User).join(Membership, Membership.user_id == User.id).where(Membership.group_id == gid))
        )
        for user in members:
            outbox.emit(
                "group.user_removed",
                {
                    "object": "group_membership",
                    "user": user_payload(user, directory),
                    "group": group_payload(group, directory),
                },
                object_id=user.id,
            )
            affected.add(user.id)
        s.execute(delete(Membership).where(Membership.group_id == gid))
        outbox.emit("group.deleted", group_payload(group, directory), object_id=gid)
        s.delete(group)
        ctx.groups.pop(gid, None)
    return affected
