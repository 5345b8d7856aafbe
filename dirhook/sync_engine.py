"""One sync pass: normalize what a source reports, diff it against the stored state, and
commit the new state together with its events, chunk by chunk.

No Temporal and no network here: the activity hands in a ``Changes`` (streams from a
provider) and a sessionmaker. Every chunk is one transaction holding the state and the
events it produced, so a crash loses at most the chunk in flight and a re-run emits only
what was not committed. The cursor is committed last, with the deletions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Directory, Group, Membership, User, utcnow
from dirhook.diff import content_hash, previous_attributes
from dirhook.ids import new_id
from dirhook.models import NormalizedGroup, NormalizedUser
from dirhook.normalize import normalize_group, normalize_user
from dirhook.outbox import Outbox
from dirhook.payloads import group_payload, user_payload
from dirhook.providers.base import Changes

log = logging.getLogger(__name__)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _ref(value: str | None) -> str | None:
    # DNs compare case-insensitively; "uid=A,ou=People" and "uid=a,ou=people" are one entry.
    return value.strip().lower() if value else None


@dataclass
class PassResult:
    full: bool
    users_read: int = 0
    groups_read: int = 0
    events: dict[str, int] = field(default_factory=dict)
    endpoint_ids: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def as_dict(self) -> dict[str, Any]:
        return {"full": self.full, "users_read": self.users_read, "groups_read": self.groups_read,
                "events": dict(self.events), "events_total": self.events_total, "warnings": list(self.warnings)}


class SyncEngine:
    def __init__(self, sessions: sessionmaker, directory_id: str, mapping: Mapping[str, Any], *,
                 chunk_size: int = 500, on_progress: Callable[[dict[str, Any]], None] | None = None,
                 max_payload_bytes: int = 512 * 1024):
        self.sessions = sessions
        self.directory_id = directory_id
        self.mapping = mapping
        self.chunk_size = chunk_size
        self.max_payload_bytes = max_payload_bytes
        self.on_progress = on_progress or (lambda _p: None)

    # -- the pass -------------------------------------------------------------------------------
    def run(self, changes: Changes) -> PassResult:
        result = PassResult(full=changes.full)
        self._result = result
        self._groups: dict[str, Group] = {}  # id -> row (detached), every group of the directory
        self._unresolved_managers: set[str] = set()

        # 1. Groups: few enough to hold (with their member references) for the whole pass.
        fetched: list[NormalizedGroup] = []
        for entry in changes.groups:
            fetched.append(normalize_group(self.mapping["group"], entry.attributes, _ref(entry.ref)))
        result.groups_read = len(fetched)
        fetched_ids: set[str] = set()
        for chunk in _chunks(fetched, self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                fetched_ids.update(self._apply_groups(s, outbox, chunk))
                self._flush(outbox)
        self._load_groups()
        ext_to_group = {g.external_id: gid for gid, g in self._groups.items()}
        members_by_ref: dict[str, set[str]] = {}
        for g in fetched:
            gid = ext_to_group[g.external_id]
            for ref in g.member_refs:
                members_by_ref.setdefault(_ref(ref), set()).add(gid)
        del fetched
        self._progress("groups", changes)

        # 2. Users, streamed page by page.
        seen_users: set[str] = set()
        processed: set[str] = set()
        for chunk in _chunks(changes.users, self.chunk_size):
            users = [normalize_user(self.mapping["user"], e.attributes, _ref(e.ref)) for e in chunk]
            result.users_read += len(users)
            seen_users.update(u.external_id for u in users)
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                processed.update(self._apply_users(s, outbox, users, fetched_ids, members_by_ref))
                self._flush(outbox)
            self._progress("users", changes)

        # 3. Incremental: members of changed groups whose own entry did not change.
        if not changes.full and fetched_ids:
            with self.sessions() as s:
                affected = set(s.scalars(select(Membership.user_id).where(Membership.group_id.in_(fetched_ids))))
                refs = list(members_by_ref)
                for part in _chunks(refs, 500):
                    affected.update(s.scalars(select(User.id).where(
                        User.directory_id == self.directory_id, User.source_ref.in_(part))))
            self._reprocess(affected - processed, fetched_ids, members_by_ref)

        # 4. Deletions, then the cursor, in one last transaction.
        with self.sessions.begin() as s:
            outbox = self._outbox(s)
            directory = s.get(Directory, self.directory_id)
            group_ids_now = self._present_ids(changes.group_ids)
            if changes.full:
                gone_groups = set(self._groups) - fetched_ids
                if not fetched_ids and self._groups:
                    gone_groups = set()
                    result.warnings.append("the source returned no groups; no group was deleted")
            elif group_ids_now is not None:
                gone_groups = {gid for gid, g in self._groups.items() if g.external_id not in group_ids_now}
            else:
                gone_groups = set()
            cascade = self._delete_groups(s, outbox, directory, gone_groups)

            stored_users = dict(s.execute(select(User.external_id, User.id).where(User.directory_id == self.directory_id)).all())
            present = seen_users if changes.full else self._present_ids(changes.user_ids)
            gone_users: set[str] = set()
            if present is not None:
                if not present and stored_users:
                    result.warnings.append("the source returned no users; no user was deleted")
                else:
                    gone_users = {uid for ext, uid in stored_users.items() if ext not in present}
            self._delete_users(s, outbox, directory, gone_users)
            self._flush(outbox)

        # 5. Consequences: members of deleted groups, and managers that appeared later in the stream.
        self._reprocess((cascade | self._unresolved_managers) - gone_users, set(), {})

        with self.sessions.begin() as s:
            directory = s.get(Directory, self.directory_id)
            directory.cursor = dict(changes.next_cursor)
            if result.events_total:
                outbox = self._outbox(s)
                outbox.emit("directory.sync_completed", {
                    "object": "directory", "id": directory.id, "organization_id": directory.organization_id,
                    "name": directory.name, "provider": directory.provider, "full": result.full,
                    "users_read": result.users_read, "groups_read": result.groups_read,
                    "changes": dict(result.events),
                }, object_id=directory.id)
                self._flush(outbox)
        self._progress("done", changes)
        return result

    # -- helpers --------------------------------------------------------------------------------
    def _outbox(self, s: Session) -> Outbox:
        return Outbox(s, s.get(Directory, self.directory_id), self.max_payload_bytes)

    def _flush(self, outbox: Outbox) -> None:
        outbox.flush()
        for k, v in outbox.counts.items():
            self._result.events[k] = self._result.events.get(k, 0) + v
        self._result.endpoint_ids |= outbox.endpoint_ids_touched

    def _progress(self, stage: str, changes: Changes) -> None:
        self.on_progress({"stage": stage, "users_read": self._result.users_read,
                          "groups_read": self._result.groups_read, "events": self._result.events_total})

    @staticmethod
    def _present_ids(lister: Callable[[], Iterable[str]] | None) -> set[str] | None:
        return set(lister()) if lister is not None else None

    def _load_groups(self) -> None:
        with self.sessions() as s:
            self._groups = {g.id: g for g in s.scalars(select(Group).where(Group.directory_id == self.directory_id))}
            s.expunge_all()

    def _apply_groups(self, s: Session, outbox: Outbox, groups: list[NormalizedGroup]) -> set[str]:
        directory = outbox.directory
        existing = {g.external_id: g for g in s.scalars(select(Group).where(
            Group.directory_id == self.directory_id, Group.external_id.in_([g.external_id for g in groups])))}
        ids = set()
        for g in groups:
            state = {"external_id": g.external_id, "name": g.name, "description": g.description,
                     "raw_attributes": g.raw_attributes}
            h = content_hash(state)
            row = existing.get(g.external_id)
            if row is None:
                row = Group(id=new_id("grp"), directory_id=self.directory_id, external_id=g.external_id,
                            source_ref=g.source_ref, state=state, content_hash=h, version=1,
                            updated_at=utcnow())
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

    def _apply_users(self, s: Session, outbox: Outbox, users: list[NormalizedUser], authoritative: set[str],
                     members_by_ref: Mapping[str, set[str]], rows: dict[str, User] | None = None) -> set[str]:
        directory = outbox.directory
        if rows is None:
            rows = {u.external_id: u for u in s.scalars(select(User).where(
                User.directory_id == self.directory_id, User.external_id.in_([u.external_id for u in users])))}
        stored: dict[str, set[str]] = {}
        if rows:
            for uid, gid in s.execute(select(Membership.user_id, Membership.group_id).where(
                    Membership.user_id.in_([r.id for r in rows.values()]))):
                stored.setdefault(uid, set()).add(gid)
        new_rows = []
        for u in users:
            row = rows.get(u.external_id)
            if row is None:
                row = User(id=new_id("usr"), directory_id=self.directory_id, external_id=u.external_id,
                           version=0, state={}, content_hash="")
                rows[u.external_id] = row
                new_rows.append(row)
            row.source_ref = u.source_ref
            row.attributes = u.model_dump(mode="json")
        s.add_all(new_rows)
        s.flush()  # the users must exist before the memberships that point at them
        manager_refs = {u.manager_ref.lower() for u in users if u.manager_ref}
        managers: dict[str, str] = {}
        for part in _chunks(manager_refs, 500):
            managers.update(s.execute(select(User.source_ref, User.id).where(
                User.directory_id == self.directory_id, User.source_ref.in_(part))).all())
        touched = set()
        for u in users:
            row = rows[u.external_id]
            old_groups = stored.get(row.id, set())
            new_groups = (old_groups - authoritative) | set(members_by_ref.get(u.source_ref or "", ()))
            added, removed = new_groups - old_groups, old_groups - new_groups
            if added:
                s.add_all([Membership(group_id=g, user_id=row.id, directory_id=self.directory_id) for g in added])
            if removed:
                s.execute(delete(Membership).where(Membership.user_id == row.id, Membership.group_id.in_(removed)))
            manager_id = None
            if u.manager_ref:
                manager_id = managers.get(u.manager_ref.lower())
                if manager_id is None:
                    self._unresolved_managers.add(row.id)
                else:
                    self._unresolved_managers.discard(row.id)
            state = {
                "external_id": u.external_id, "username": u.username,
                "emails": [e.model_dump() for e in u.emails], "given_name": u.given_name,
                "family_name": u.family_name, "display_name": u.display_name, "title": u.title,
                "department": u.department, "manager_id": manager_id, "active": u.active,
                "groups": sorted(({"id": g, "name": self._groups[g].state["name"]} for g in new_groups),
                                 key=lambda x: (x["name"], x["id"])),
                "roles": [],
                "custom_attributes": u.custom_attributes, "raw_attributes": u.raw_attributes,
            }
            h = content_hash(state)
            if row.version == 0:
                row.state, row.content_hash, row.version, row.updated_at = state, h, 1, utcnow()
                outbox.emit("user.created", user_payload(row, directory), object_id=row.id)
            elif h != row.content_hash:
                prev = previous_attributes(row.state, state)
                row.state, row.content_hash, row.updated_at = state, h, utcnow()
                row.version += 1
                outbox.emit("user.updated", user_payload(row, directory), prev, object_id=row.id)
            for gid in sorted(removed):
                outbox.emit("group.user_removed", {"object": "group_membership", "user": user_payload(row, directory),
                                                   "group": group_payload(self._groups[gid], directory)},
                            object_id=row.id)
            for gid in sorted(added):
                outbox.emit("group.user_added", {"object": "group_membership", "user": user_payload(row, directory),
                                                 "group": group_payload(self._groups[gid], directory)},
                            object_id=row.id)
            touched.add(row.id)
        return touched

    def _reprocess(self, user_ids: set[str], authoritative: set[str], members_by_ref: Mapping[str, set[str]]) -> None:
        """Recompute users from their stored attributes (their groups or manager changed, not their entry)."""
        for part in _chunks(sorted(user_ids), self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                rows = {r.external_id: r for r in s.scalars(select(User).where(User.id.in_(part)))}
                users = [NormalizedUser.model_validate(r.attributes) for r in rows.values()]
                self._apply_users(s, outbox, users, authoritative, members_by_ref, rows=rows)
                self._flush(outbox)

    def _delete_groups(self, s: Session, outbox: Outbox, directory: Directory, group_ids: set[str]) -> set[str]:
        affected: set[str] = set()
        for gid in sorted(group_ids):
            group = s.get(Group, gid)
            members = list(s.scalars(select(User).join(Membership, Membership.user_id == User.id)
                                     .where(Membership.group_id == gid)))
            for user in members:
                outbox.emit("group.user_removed", {"object": "group_membership", "user": user_payload(user, directory),
                                                   "group": group_payload(group, directory)}, object_id=user.id)
                affected.add(user.id)
            s.execute(delete(Membership).where(Membership.group_id == gid))
            outbox.emit("group.deleted", group_payload(group, directory), object_id=gid)
            s.delete(group)
            self._groups.pop(gid, None)
        return affected

    def _delete_users(self, s: Session, outbox: Outbox, directory: Directory, user_ids: set[str]) -> None:
        for part in _chunks(sorted(user_ids), 500):
            memberships: dict[str, list[str]] = {}
            for uid, gid in s.execute(select(Membership.user_id, Membership.group_id).where(Membership.user_id.in_(part))):
                memberships.setdefault(uid, []).append(gid)
            for user in s.scalars(select(User).where(User.id.in_(part))):
                for gid in sorted(memberships.get(user.id, [])):
                    outbox.emit("group.user_removed", {"object": "group_membership", "user": user_payload(user, directory),
                                                       "group": group_payload(self._groups[gid], directory)},
                                object_id=user.id)
                outbox.emit("user.deleted", user_payload(user, directory), object_id=user.id)
            s.execute(delete(Membership).where(Membership.user_id.in_(part)))
            s.execute(delete(User).where(User.id.in_(part)))
