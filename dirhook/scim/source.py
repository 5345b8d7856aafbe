"""A SCIM directory as a source for a sync pass: what the IdP pushed, read back from the
``scim_resources`` table. Pushes are projected one by one as they arrive; a pass (full or
incremental: both read everything, the table is local) reconciles the whole directory,
after a projection failed or the attribute mapping changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.scim_tables import ScimDeprovision, ScimMember, ScimResource
from dirhook.providers.base import Changes, SourceEntry
from dirhook.scim.pending import DEACTIVATE, HELD, PENDING, with_active
from dirhook.scim.records import group_record, user_record


class ScimStoreSource:
    def __init__(self, sessions: sessionmaker[Session], directory_id: str, mapping: dict[str, Any]):
        self.sessions = sessions
        self.directory_id = directory_id
        self.mapping = mapping

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _entries(self, resource_type: str) -> Iterator[SourceEntry]:
        record = user_record if resource_type == "User" else group_record
        with self.sessions() as s:
            rows = s.execute(
                select(ScimResource.id, ScimResource.body)
                .where(ScimResource.directory_id == self.directory_id, ScimResource.resource_type == resource_type)
                .order_by(ScimResource.id)
            ).all()
            members: dict[str, list[dict[str, str]]] = {}
            if resource_type == "Group":
                for group_id, member_id in s.execute(
                    select(ScimMember.group_id, ScimMember.member_id).where(
                        ScimMember.directory_id == self.directory_id
                    )
                ):
                    members.setdefault(group_id, []).append({"value": member_id})
            # Deprovisions not applied yet (dirhook/scim/deprovisions.py) are not the pass's to
            # apply: a user deleted by the IdP is still read, a deactivated one as it was.
            unapplied: dict[str, Any] = (
                dict(
                    s.execute(
                        select(ScimDeprovision.resource_id, ScimDeprovision.previous).where(
                            ScimDeprovision.directory_id == self.directory_id,
                            ScimDeprovision.kind == DEACTIVATE,
                            ScimDeprovision.state.in_((PENDING, HELD)),
                        )
                    ).all()
                )
                if resource_type == "User"
                else {}
            )
        for resource_id, body in rows:
            if resource_type == "Group":
                body = {**body, "members": members.get(resource_id, [])}
            elif resource_id in unapplied:
                body = with_active(body, (unapplied[resource_id] or {}).get("active"))
            yield SourceEntry(ref=resource_id, attributes=record(body))

    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes:
        return Changes(full=True, groups=self._entries("Group"), users=self._entries("User"))
