"""One sync pass: normalize what a source reports, diff it against the stored state, and
commit the new state together with its events, chunk by chunk.

No Temporal and no network here: the activity hands in a ``Changes`` (streams from a
provider) and a sessionmaker. Every chunk is one transaction holding the state and the
events it produced, so a crash loses at most the chunk in flight and a re-run emits only
what was not committed. The cursor is committed last, with the deletions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from itertools import islice
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import (
    Directory,
    Group,
    GroupNesting,
    HeldDeletion,
    Membership,
    Role,
    RoleMappingRow,
    User,
    utcnow,
)
from dirhook.diff import content_hash, previous_attributes
from dirhook.ids import new_id
from dirhook.jsonenc import Encoded
from dirhook.models import NormalizedGroup
from dirhook.normalize import (
    cap_raw_attributes,
    normalize_group,
    normalize_user,
    reference_key,
    source_record,
)
from dirhook.outbox import Outbox
from dirhook.payloads import group_payload, user_payload
from dirhook.providers.base import Changes
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

log = logging.getLogger(__name__)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# What _apply_users reads of a stored user.
_STORED_USER = (User.id, User.external_id, User.version, User.content_hash, User.state, User.attributes,
                User.source_record, User.source_ref, User.updated_at)


class _Snapshot(NamedTuple):
    """A user as its payload shows it (the fields dirhook.payloads.user_payload reads)."""

    id: str
    state: dict[str, Any]
    updated_at: datetime
    version: int


@dataclass
class PassResult:
    full: bool
    users_read: int = 0
    groups_read: int = 0
    users_written: int = 0  # inserted or updated: what was unchanged is read and compared only
    events: dict[str, int] = field(default_factory=dict)
    endpoint_ids: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # deletions awaiting approval, by kind

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def as_dict(self) -> dict[str, Any]:
        return {"full": self.full, "users_read": self.users_read, "groups_read": self.groups_read,
                "users_written": self.users_written, "events": dict(self.events), "events_total": self.events_total,
                "warnings": list(self.warnings), "held_deletions": dict(self.held)}


class SyncEngine:
    def __init__(self, sessions: sessionmaker, directory_id: str, mapping: Mapping[str, Any], *,
                 chunk_size: int = 500, on_progress: Callable[[dict[str, Any]], None] | None = None,
                 max_payload_bytes: int = 512 * 1024, raw_attributes_max_bytes: int = 32 * 1024,
                 deletion_threshold: tuple[int, float] = (500, 10.0),
                 on_commit: Callable[[set[str]], None] | None = None):
        self.sessions = sessions
        self.directory_id = directory_id
        self.mapping = mapping
        self.chunk_size = chunk_size
        self.max_payload_bytes = max_payload_bytes
        self.raw_attributes_max_bytes = raw_attributes_max_bytes
        self.deletion_threshold = deletion_threshold
        # Told the endpoints with new pending deliveries after every committed chunk, so
        # delivery starts while a long pass is still reading.
        self.on_commit = on_commit or (lambda _endpoints: None)
        self._touched: set[str] = set()  # endpoints with deliveries flushed since the last commit report
        self.on_progress = on_progress or (lambda _p: None)

    # -- the pass -------------------------------------------------------------------------------
    def run(self, changes: Changes) -> PassResult:
        result = PassResult(full=changes.full)
        self._result = result
        result.warnings.extend(changes.notes)
        self._unresolved_managers: set[str] = set()
        self._load_context()
        before = self._group_signatures()

        # 1. Groups: few enough to hold (with their member references) for the whole pass.
        fetched: list[NormalizedGroup] = []
        for entry in changes.groups:
            fetched.append(normalize_group(self.mapping["group"], entry.attributes, reference_key(entry.ref)))
        result.groups_read = len(fetched)
        fetched_ids: set[str] = set()
        for chunk in _chunks(fetched, self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                fetched_ids.update(self._apply_groups(s, outbox, chunk))
                self._flush(outbox)
        self._load_context()
        ext_to_group = {g.external_id: gid for gid, g in self._groups.items()}
        self._apply_nesting({ext_to_group[g.external_id]: g.member_refs for g in fetched})
        members_by_ref: dict[str, set[str]] = {}
        for g in fetched:
            gid = ext_to_group[g.external_id]
            for ref in g.member_refs:
                members_by_ref.setdefault(reference_key(ref), set()).add(gid)
        del fetched

        # 2. Group deletions, before the users, so users are computed against the final groups.
        if changes.full:
            gone_groups = set(self._groups) - fetched_ids
            if not fetched_ids and self._groups:
                gone_groups = set()
                result.warnings.append("the source returned no groups; no group was deleted")
        else:
            present_groups = self._present_ids(changes.group_ids)
            gone_groups = set() if present_groups is None else {
                gid for gid, g in self._groups.items() if g.external_id not in present_groups}
            if present_groups is not None and not present_groups and self._groups:
                gone_groups = set()
                result.warnings.append("the source returned no groups; no group was deleted")
        cascade: set[str] = set()
        # Held deletions are decided afresh only by a pass that decides deletions (a listing,
        # or deletions it is told of and may hold): never wiped by an unrelated write such as
        # a SCIM push, which would let a pass's held mass deletion vanish unapproved.
        if changes.full or changes.group_ids is not None or changes.user_ids is not None or (
                changes.hold_explicit_deletions and (changes.deleted_user_ids or changes.deleted_group_ids)):
            self._clear_held()
        told = {gid for gid, g in self._groups.items() if g.external_id in changes.deleted_group_ids}
        if changes.hold_explicit_deletions:
            gone_groups = self._hold_if_too_many("group", gone_groups | told, len(self._groups))
        else:
            gone_groups = self._hold_if_too_many("group", gone_groups, len(self._groups)) | told
        if gone_groups:
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                cascade = self._delete_groups(s, outbox, outbox.directory, gone_groups)
                self._flush(outbox)
            self._load_context()
        # Users whose groups or roles changed through a group: renamed, nested, unnested,
        # deleted, or granting other roles.
        cascade |= self._members_of(self._changed_groups(before, gone_groups))
        if self._cycles:
            result.warnings.append("nested group cycles (each group keeps the others' membership): " + "; ".join(
                " -> ".join(self._groups[g].state["name"] for g in cycle if g in self._groups)
                for cycle in self._cycles))
        self._progress("groups")

        # 3. Users, streamed page by page.
        seen_users: set[str] = set()
        processed: set[str] = set()
        for chunk in _chunks(changes.users, self.chunk_size):
            users = []
            for e in chunk:
                if e.prepared is not None:  # normalized by the source, from the stored record
                    users.append((e.prepared, e.attributes))
                    continue
                # Normalized from the record as stored: the text is made once, and a later
                # re-normalization (a mapping change) starts from the same values.
                record = source_record(e.attributes)
                user = normalize_user(self.mapping["user"], record, reference_key(e.ref))
                users.append((user.model_dump(mode="json"), record))
            result.users_read += len(users)
            seen_users.update(u["external_id"] for u, _r in users)
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                processed.update(self._apply_users(s, outbox, users, fetched_ids, members_by_ref))
                self._flush(outbox)
            self._progress("users")

        # 4. Incremental: members of changed groups whose own entry did not change.
        if not changes.full and fetched_ids:
            with self.sessions() as s:
                affected = set(s.scalars(select(Membership.user_id).where(Membership.group_id.in_(fetched_ids))))
                for part in _chunks(list(members_by_ref), 500):
                    affected.update(s.scalars(select(User.id).where(
                        User.directory_id == self.directory_id, User.source_ref.in_(part))))
                # A user the source deleted in this pass loses its groups with its deletion
                # (group.user_removed, user.deleted), not first with a user.updated.
                doomed = set(s.scalars(select(User.id).where(
                    User.directory_id == self.directory_id,
                    User.external_id.in_(changes.deleted_user_ids)))) if changes.deleted_user_ids else set()
            self._reprocess(affected - processed - doomed, fetched_ids, members_by_ref)
            processed |= affected

        # 5. User deletions.
        gone_users: set[str] = set()
        present = seen_users if changes.full else self._present_ids(changes.user_ids)
        # An incremental pass that names no deletion and lists nothing skips this: it would
        # read every stored user's id for nothing (0.5 s at 100,000 users).
        with self.sessions.begin() as s:
            outbox = self._outbox(s)
            stored_users = dict(s.execute(select(User.external_id, User.id)
                                          .where(User.directory_id == self.directory_id)).all()) \
                if present is not None or changes.deleted_user_ids else {}
            if present is not None:
                if not present and stored_users:
                    result.warnings.append("the source returned no users; no user was deleted")
                else:
                    gone_users = {uid for ext, uid in stored_users.items() if ext not in present}
            told = {stored_users[ext] for ext in changes.deleted_user_ids if ext in stored_users}
            if changes.hold_explicit_deletions:
                gone_users = self._hold_if_too_many("user", gone_users | told, len(stored_users), s)
            else:
                gone_users = self._hold_if_too_many("user", gone_users, len(stored_users), s) | told
            self._delete_users(s, outbox, outbox.directory, gone_users)
            self._flush(outbox)

        # 6. Consequences: users whose groups changed through a group, and managers that
        # appeared later in the stream.
        self._reprocess(((cascade - processed) | self._unresolved_managers) - gone_users, set(), {})

        with self.sessions.begin() as s:
            directory = s.get(Directory, self.directory_id)
            if not result.held:
                directory.cursor = dict(changes.next_cursor)
            # else the cursor stays: a source that reports deletions once (syncrepl, Graph)
            # reports the held ones again on the next pass, until they are approved.
            if result.events_total and changes.announce:
                outbox = self._outbox(s)
                outbox.emit("directory.sync_completed", {
                    "object": "directory", "id": directory.id, "organization_id": directory.organization_id,
                    "name": directory.name, "provider": directory.provider, "full": result.full,
                    "users_read": result.users_read, "groups_read": result.groups_read,
                    "changes": dict(result.events),
                }, object_id=directory.id)
                self._flush(outbox)
        self._progress("done")
        return result

    def recompute(self, renormalize: bool = True) -> PassResult:
        """Recompute every user from what is stored (no directory read): after a change of
        role mappings, roles or the attribute mapping. Emits events only where a user changed."""
        result = PassResult(full=False)
        self._result = result
        self._unresolved_managers = set()
        self._load_context()
        with self.sessions() as s:
            user_ids = set(s.scalars(select(User.id).where(User.directory_id == self.directory_id)))
        self._reprocess(user_ids, set(), {}, renormalize=renormalize)
        self._progress("done")
        return result

    # -- deletion protection -------------------------------------------------------------------------
    def _threshold(self, total: int) -> int:
        count, percent = self.deletion_threshold
        return min(count, math.ceil(total * percent / 100))

    def _clear_held(self) -> None:
        """A new pass decides afresh: what it finds missing now is what may be held."""
        with self.sessions.begin() as s:
            s.execute(delete(HeldDeletion).where(HeldDeletion.directory_id == self.directory_id))

    def _hold_if_too_many(self, kind: str, ids: set[str], total: int, s: Session | None = None) -> set[str]:
        """The deletions to carry out now: all of them, or none when they pass the threshold
        (then they are stored, awaiting an operator's approval)."""
        limit = self._threshold(total)
        if len(ids) <= limit:
            return ids
        rows = [HeldDeletion(directory_id=self.directory_id, object_type=kind, object_id=i) for i in sorted(ids)]
        if s is None:
            with self.sessions.begin() as own:
                own.add_all(rows)
        else:
            s.add_all(rows)
        self._result.held[kind + "s"] = len(ids)
        self._result.warnings.append(
            f"{len(ids)} {kind}s are gone from the source, more than the deletion threshold of {limit} "
            f"(of {total}): deletions held for approval")
        return set()

    def apply_held_deletions(self) -> PassResult:
        """An operator approved: delete what the last pass held (still stored), with the events."""
        result = PassResult(full=False)
        self._result = result
        self._unresolved_managers = set()
        self._load_context()
        with self.sessions() as s:
            held = s.execute(select(HeldDeletion.object_type, HeldDeletion.object_id)
                             .where(HeldDeletion.directory_id == self.directory_id)).all()
        groups = {i for kind, i in held if kind == "group" and i in self._groups}
        users = {i for kind, i in held if kind == "user"}
        cascade: set[str] = set()
        if groups:
            before = self._group_signatures()
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                cascade = self._delete_groups(s, outbox, outbox.directory, groups)
                self._flush(outbox)
            self._load_context()
            cascade |= self._members_of(self._changed_groups(before, groups))
        with self.sessions.begin() as s:
            outbox = self._outbox(s)
            present = set(s.scalars(select(User.id).where(User.id.in_(users)))) if users else set()
            self._delete_users(s, outbox, outbox.directory, present)
            self._flush(outbox)
            s.execute(delete(HeldDeletion).where(HeldDeletion.directory_id == self.directory_id))
        self._reprocess(cascade - users, set(), {})
        return result

    # -- groups, nesting and roles ----------------------------------------------------------------
    def _load_context(self) -> None:
        """The directory's groups, nesting, roles and role mappings, as the pure role code wants them."""
        with self.sessions() as s:
            directory = s.get(Directory, self.directory_id)
            self._groups = {g.id: g for g in s.scalars(select(Group).where(Group.directory_id == self.directory_id))}
            parents: dict[str, set[str]] = {}
            for parent, child in s.execute(select(GroupNesting.parent_group_id, GroupNesting.child_group_id)
                                           .where(GroupNesting.directory_id == self.directory_id)):
                parents.setdefault(child, set()).add(parent)
            role_rows = list(s.scalars(select(Role).where(Role.organization_id == directory.organization_id)))
            mappings = [RoleMapping(slug, m.match, m.pattern) for m, slug in s.execute(
                select(RoleMappingRow, Role.slug).join(Role, Role.id == RoleMappingRow.role_id)
                .where(RoleMappingRow.directory_id == self.directory_id))]
            s.expunge_all()
        self._parents = parents
        self._ancestors = ancestors(parents)
        self._cycles = find_cycles(parents)
        self._roles = {r.slug: RoleDef(r.slug, r.priority) for r in role_rows}
        self._default_role = next((r.slug for r in role_rows if r.is_default), None)
        self._group_payloads: dict[str, Encoded] = {}
        self._grants = group_grants((GroupInfo(g.id, g.external_id, g.state["name"]) for g in self._groups.values()),
                                    mappings)

    def _group_signatures(self) -> dict[str, tuple]:
        """What a member sees of each group: its name, the groups above it, the roles it grants."""
        return {gid: (g.state["name"], self._ancestors.get(gid, frozenset()), self._grants.get(gid, frozenset()))
                for gid, g in self._groups.items()}

    def _changed_groups(self, before: dict[str, tuple], gone: set[str]) -> set[str]:
        after = self._group_signatures()
        dirty = {gid for gid in after if before.get(gid) != after[gid]} | gone
        return dirty | {gid for gid, above in self._ancestors.items() if above & dirty}

    def _members_of(self, group_ids: set[str]) -> set[str]:
        members: set[str] = set()
        with self.sessions() as s:
            for part in _chunks(sorted(group_ids), 500):
                members.update(s.scalars(select(Membership.user_id).where(Membership.group_id.in_(part))))
        return members

    def _apply_nesting(self, member_refs: dict[str, list[str]]) -> None:
        """Replace the child groups of every fetched group with those its member list names."""
        ref_to_group = {g.source_ref: gid for gid, g in self._groups.items() if g.source_ref}
        children_of: dict[str, set[str]] = {}
        for child, parents in self._parents.items():
            for parent in parents:
                children_of.setdefault(parent, set()).add(child)
        changed = False
        with self.sessions.begin() as s:
            for parent, refs in member_refs.items():
                new = {ref_to_group[r] for r in map(reference_key, refs) if r in ref_to_group}
                old = children_of.get(parent, set())
                if old - new:
                    s.execute(delete(GroupNesting).where(GroupNesting.parent_group_id == parent,
                                                         GroupNesting.child_group_id.in_(old - new)))
                if new - old:
                    s.add_all([GroupNesting(parent_group_id=parent, child_group_id=c, directory_id=self.directory_id)
                               for c in new - old])
                changed = changed or old != new
        if changed:
            self._load_context()

    # -- helpers --------------------------------------------------------------------------------
    def _outbox(self, s: Session) -> Outbox:
        return Outbox(s, s.get(Directory, self.directory_id), self.max_payload_bytes)

    def _flush(self, outbox: Outbox) -> None:
        """Write the chunk's events; the caller's transaction commits them."""
        outbox.flush()
        for k, v in outbox.counts.items():
            self._result.events[k] = self._result.events.get(k, 0) + v
        self._result.endpoint_ids |= outbox.endpoint_ids_touched
        self._touched |= outbox.endpoint_ids_touched

    def _progress(self, stage: str) -> None:
        # Called between transactions: what was flushed so far is committed.
        if self._touched:
            touched, self._touched = self._touched, set()
            self.on_commit(touched)
        self.on_progress({"stage": stage, "users_read": self._result.users_read,
                          "groups_read": self._result.groups_read, "users_written": self._result.users_written,
                          "events": self._result.events_total})

    @staticmethod
    def _present_ids(lister: Callable[[], Iterable[str]] | None) -> set[str] | None:
        return set(lister()) if lister is not None else None

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

    def _stored_users(self, s: Session, condition) -> dict[str, Row]:
        """Stored users as plain rows (no ORM objects: a full pass handles every user), by external id."""
        return {r.external_id: r for r in s.execute(select(*_STORED_USER).where(condition))}

    def _group_json(self, gid: str, directory: Directory) -> Encoded:
        """A group's payload, encoded once until the groups are loaded again."""
        encoded = self._group_payloads.get(gid)
        if encoded is None:
            encoded = self._group_payloads[gid] = Encoded(group_payload(self._groups[gid], directory))
        return encoded

    def _apply_users(self, s: Session, outbox: Outbox, pairs: list[tuple[dict[str, Any], dict | None]],
                     authoritative: set[str], members_by_ref: Mapping[str, set[str]],
                     stored: dict[str, Row] | None = None) -> set[str]:
        """``pairs``: each user as normalized (a NormalizedUser as JSON, as stored in
        ``users.attributes``), with the source record it came from (None: keep the stored one).
        Writes go through Core statements in bulk: ORM objects for every user of a full pass
        cost more than reading the directory (bench/ldap_full_sync.py)."""
        directory = outbox.directory
        users = [u for u, _r in pairs]
        if stored is None:
            stored = self._stored_users(s, (User.directory_id == self.directory_id)
                                        & User.external_id.in_([u["external_id"] for u in users]))
        memberships: dict[str, set[str]] = {}
        if stored:
            for uid, gid in s.execute(select(Membership.user_id, Membership.group_id).where(
                    Membership.user_id.in_([r.id for r in stored.values()]))):
                memberships.setdefault(uid, set()).add(gid)
        ids = {u["external_id"]: (stored[u["external_id"]].id if u["external_id"] in stored else new_id("usr"))
               for u in users}
        # Managers: this chunk's users first (some are not inserted yet), then the stored ones.
        managers = {u["source_ref"]: ids[u["external_id"]] for u in users if u["source_ref"]}
        wanted = {u["manager_ref"].lower() for u in users if u["manager_ref"]} - managers.keys()
        for part in _chunks(wanted, 500):
            managers.update(s.execute(select(User.source_ref, User.id).where(
                User.directory_id == self.directory_id, User.source_ref.in_(part))).all())
        inserts, updates, added_rows, removals = [], [], [], []
        touched = set()
        for u, record in pairs:
            row = stored.get(u["external_id"])
            uid = ids[u["external_id"]]
            old_groups = memberships.get(uid, set())
            new_groups = (old_groups - authoritative) | members_by_ref.get(u["source_ref"] or "", set())
            added, removed = new_groups - old_groups, old_groups - new_groups
            manager_id = None
            if u["manager_ref"]:
                manager_id = managers.get(u["manager_ref"].lower())
                if manager_id is None:
                    self._unresolved_managers.add(uid)
                else:
                    self._unresolved_managers.discard(uid)
            effective = effective_groups(new_groups, self._ancestors)
            roles = compute_roles(effective, self._grants, self._roles, self._default_role)
            state = {
                "external_id": u["external_id"], "username": u["username"], "emails": u["emails"],
                "given_name": u["given_name"], "family_name": u["family_name"], "display_name": u["display_name"],
                "title": u["title"], "department": u["department"], "manager_id": manager_id, "active": u["active"],
                "groups": sorted(({"id": g, "name": self._groups[g].state["name"], "direct": direct}
                                  for g, direct in effective.items()), key=lambda x: (x["name"], x["id"])),
                "roles": roles,
                "role": primary_role(roles),
                "custom_attributes": u["custom_attributes"],
                "raw_attributes": cap_raw_attributes(u["raw_attributes"], self.raw_attributes_max_bytes),
            }
            h = content_hash(state)
            snapshot, event, previous = None, None, None
            if row is None:
                snapshot = _Snapshot(uid, state, utcnow(), 1)
                inserts.append({"id": uid, "directory_id": self.directory_id, "external_id": u["external_id"],
                                "source_ref": u["source_ref"], "attributes": u, "source_record": record,
                                "state": state, "content_hash": h, "version": 1,
                                "created_at": snapshot.updated_at, "updated_at": snapshot.updated_at})
                event = "user.created"
            else:
                snapshot = _Snapshot(uid, row.state, row.updated_at, row.version)
                changes = {}
                if h != row.content_hash:
                    previous = previous_attributes(row.state, state)
                    if previous:
                        snapshot = _Snapshot(uid, state, utcnow(), row.version + 1)
                        event = "user.updated"
                    # else only the hash's encoding changed: store it, tell nobody
                if (event or h != row.content_hash or u["source_ref"] != row.source_ref or u != row.attributes
                        or (record is not None and record != row.source_record)):
                    changes = {"_id": uid, "source_ref": u["source_ref"], "attributes": u,
                               "source_record": row.source_record if record is None else record,
                               "state": snapshot.state, "content_hash": h, "version": snapshot.version,
                               "updated_at": snapshot.updated_at}
                    updates.append(changes)
            if event or added or removed:
                user_json = Encoded(user_payload(snapshot, directory))
                if event:
                    outbox.emit(event, user_json, previous if event == "user.updated" else None, object_id=uid)
                for kind, gids in (("group.user_removed", removed), ("group.user_added", added)):
                    for gid in sorted(gids):
                        outbox.emit(kind, {"object": "group_membership", "user": user_json,
                                           "group": self._group_json(gid, directory)}, object_id=uid)
            added_rows.extend({"group_id": g, "user_id": uid, "directory_id": self.directory_id} for g in added)
            if removed:
                removals.append((uid, removed))
            touched.add(uid)
        self._result.users_written += len(inserts) + len(updates)
        users_table = User.__table__
        if inserts:  # before the memberships that point at them
            s.execute(users_table.insert(), inserts)
        if updates:
            s.execute(users_table.update().where(users_table.c.id == bindparam("_id")), updates)
        for uid, removed in removals:
            s.execute(delete(Membership).where(Membership.user_id == uid, Membership.group_id.in_(removed)))
        if added_rows:
            s.execute(Membership.__table__.insert(), added_rows)
        return touched

    def _reprocess(self, user_ids: set[str], authoritative: set[str], members_by_ref: Mapping[str, set[str]],
                   renormalize: bool = False) -> None:
        """Recompute users from what is stored (their groups, roles or manager changed, not
        their entry); with ``renormalize``, from their source record through the current mapping."""
        for part in _chunks(sorted(user_ids), self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                stored = self._stored_users(s, User.id.in_(part))
                pairs = []
                for r in stored.values():
                    if renormalize and r.source_record is not None:
                        pairs.append((normalize_user(self.mapping["user"], r.source_record, r.source_ref)
                                      .model_dump(mode="json"), None))
                    else:
                        pairs.append((r.attributes, None))
                self._apply_users(s, outbox, pairs, authoritative, members_by_ref, stored=stored)
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
