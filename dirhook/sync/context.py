"""The directory's groups, nesting, roles and role mappings, loaded once and again after
every phase that changes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Directory, Group, GroupNesting, Role, RoleMappingRow
from dirhook.jsonenc import Encoded
from dirhook.payloads import group_payload
from dirhook.roles import (
    GroupInfo,
    RoleDef,
    RoleMapping,
    ancestors,
    compute_roles,
    effective_groups,
    find_cycles,
    group_grants,
    primary_role,
)
from dirhook.sync.unchanged import groups_digest

# What a member sees of a group: its name, the groups above it, the roles it grants.
GroupSignature = tuple[str, frozenset[str], frozenset[str]]


@dataclass
class DirectoryContext:
    groups: dict[str, Group]  # by id, detached from their session
    parents: dict[str, set[str]]  # child group id -> parent group ids
    ancestors: dict[str, frozenset[str]]
    cycles: list[list[str]]
    roles: dict[str, RoleDef]
    default_role: str | None
    grants: dict[str, frozenset[str]]  # group id -> role slugs it grants
    _payloads: dict[str, Encoded] = field(default_factory=dict)
    _group_parts: dict[frozenset[str], tuple[dict[str, Any], bytes]] = field(default_factory=dict)

    @classmethod
    def load(cls, sessions: sessionmaker[Session], directory_id: str) -> DirectoryContext:
        with sessions() as s:
            directory = s.get(Directory, directory_id)
            assert directory is not None, directory_id  # the activity checked it exists
            groups = {g.id: g for g in s.scalars(select(Group).where(Group.directory_id == directory_id))}
            parents: dict[str, set[str]] = {}
            for parent, child in s.execute(
                select(GroupNesting.parent_group_id, GroupNesting.child_group_id).where(
                    GroupNesting.directory_id == directory_id
                )
            ):
                parents.setdefault(child, set()).add(parent)
            role_rows = list(s.scalars(select(Role).where(Role.organization_id == directory.organization_id)))
            mappings = [
                RoleMapping(slug, m.match, m.pattern)
                for m, slug in s.execute(
                    select(RoleMappingRow, Role.slug)
                    .join(Role, Role.id == RoleMappingRow.role_id)
                    .where(RoleMappingRow.directory_id == directory_id)
                )
            ]
            s.expunge_all()
        return cls(
            groups=groups,
            parents=parents,
            ancestors=ancestors(parents),
            cycles=find_cycles(parents),
            roles={r.slug: RoleDef(r.slug, r.priority) for r in role_rows},
            default_role=next((r.slug for r in role_rows if r.is_default), None),
            grants=group_grants((GroupInfo(g.id, g.external_id, g.state["name"]) for g in groups.values()), mappings),
        )

    def signatures(self) -> dict[str, GroupSignature]:
        return {
            gid: (g.state["name"], self.ancestors.get(gid, frozenset()), self.grants.get(gid, frozenset()))
            for gid, g in self.groups.items()
        }

    def changed_groups(self, before: dict[str, GroupSignature], gone: set[str]) -> set[str]:
        """Groups whose members see something new since ``before`` (and those below them)."""
        after = self.signatures()
        dirty = {gid for gid in after if before.get(gid) != after[gid]} | gone
        return dirty | {gid for gid, above in self.ancestors.items() if above & dirty}

    def group_json(self, gid: str, directory: Directory) -> Encoded:
        """A group's payload, encoded once per loaded context."""
        encoded = self._payloads.get(gid)
        if encoded is None:
            encoded = self._payloads[gid] = Encoded(group_payload(self.groups[gid], directory))
        return encoded

    def group_part(self, direct: frozenset[str]) -> tuple[dict[str, Any], bytes]:
        """What a user in the ``direct`` groups takes from them (``groups``, ``roles``,
        ``role``) and its digest: the same for every user in the same groups, so computed
        once per loaded context (and shared: never modified in place)."""
        part = self._group_parts.get(direct)
        if part is None:
            effective = effective_groups(direct, self.ancestors)
            roles = compute_roles(effective, self.grants, self.roles, self.default_role)
            value = {
                "groups": sorted(
                    ({"id": g, "name": self.groups[g].state["name"], "direct": d} for g, d in effective.items()),
                    key=lambda x: (x["name"], x["id"]),
                ),
                "roles": roles,
                "role": primary_role(roles),
            }
            part = self._group_parts[direct] = (value, groups_digest(value))
        return part

    def cycle_warning(self) -> str | None:
        if not self.cycles:
            return None
        return "nested group cycles (each group keeps the others' membership): " + "; ".join(
            " -> ".join(self.groups[g].state["name"] for g in cycle if g in self.groups) for cycle in self.cycles
        )
