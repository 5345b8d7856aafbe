"""Writing a pass's users: their state (profile, groups, roles, manager), memberships and
events, in bulk Core statements; and their deletions."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, bindparam, delete, select
from sqlalchemy.orm import Session

from dirhook.db.schema import Membership, User, table_of, utcnow
from dirhook.diff import content_hash, previous_attributes
from dirhook.ids import new_id
from dirhook.jsonenc import Encoded
from dirhook.models import PROFILE_FIELDS
from dirhook.normalize import cap_raw_attributes
from dirhook.outbox import Outbox
from dirhook.payloads import group_payload, user_payload
from dirhook.sync.context import DirectoryContext
from dirhook.sync.result import PassResult, chunks
from dirhook.sync.unchanged import inputs_hash

# What UserWriter reads of a stored user.
STORED_USER = (
    User.id,
    User.external_id,
    User.version,
    User.content_hash,
    User.state,
    User.attributes,
    User.source_record,
    User.source_ref,
    User.updated_at,
    User.record_hash,
    User.inputs_hash,
)

# A user as normalized (a NormalizedUser as JSON, as stored in ``users.attributes``), with
# the source record it came from (None: keep the stored one) and that record's hash
# (dirhook.sync.unchanged; None: not known, the user is never skipped on it).
UserPair = tuple[dict[str, Any], dict[str, Any] | None, str | None]


# What the unchanged check reads of a stored user: no JSON column but the manager's reference.
UNCHANGED_CHECK = (
    User.id,
    User.external_id,
    User.source_ref,
    User.record_hash,
    User.inputs_hash,
    User.attributes["manager_ref"].as_string().label("manager_ref"),
)


class Snapshot(NamedTuple):
    """A user as its payload shows it (the fields dirhook.payloads.user_payload reads)."""

    id: str
    state: dict[str, Any]
    updated_at: datetime
    version: int


def stored_users(s: Session, condition: ColumnElement[bool]) -> dict[str, Row[Any]]:
    """Stored users as plain rows (no ORM objects: a full pass handles every user), by external id."""
    return {r.external_id: r for r in s.execute(select(*STORED_USER).where(condition))}


def user_state(
    u: Mapping[str, Any],
    manager_id: str | None,
    group_part: Mapping[str, Any],
    raw_attributes_max_bytes: int,
) -> dict[str, Any]:
    """What receivers get of a user (less its ids, version and time): the state compared and
    stored. ``group_part`` is what its groups give it (DirectoryContext.group_part)."""
    return {
        **{name: u[name] for name in PROFILE_FIELDS},
        "manager_id": manager_id,
        "groups": group_part["groups"],
        "roles": group_part["roles"],
        "role": group_part["role"],
        "custom_attributes": u["custom_attributes"],
        "raw_attributes": cap_raw_attributes(u["raw_attributes"], raw_attributes_max_bytes),
    }


@dataclass
class UserWriter:
    directory_id: str
    raw_attributes_max_bytes: int
    result: PassResult  # counts the rows written (users_written)
    # Users whose manager was not found (yet: it may come later in the stream).
    unresolved_managers: set[str] = field(default_factory=set)

    def apply(
        self,
        s: Session,
        outbox: Outbox,
        ctx: DirectoryContext,
        pairs: list[UserPair],
        authoritative: set[str],
        members_by_ref: Mapping[str, set[str]],
        stored: dict[str, Row[Any]] | None = None,
    ) -> set[str]:
        """Write the users; ``authoritative`` are the groups whose member lists this pass read
        (``members_by_ref``), the others' memberships are kept. Returns the users' ids.
        Writes go through Core statements in bulk: ORM objects for every user of a full pass
        cost more than reading the directory (bench/ldap_full_sync.py)."""
        directory = outbox.directory
        users = [u for u, _r, _h in pairs]
        if stored is None:
            stored = stored_users(
                s, (User.directory_id == self.directory_id) & User.external_id.in_([u["external_id"] for u in users])
            )
        memberships: dict[str, set[str]] = {}
        if stored:
            for uid, gid in s.execute(
                select(Membership.user_id, Membership.group_id).where(
                    Membership.user_id.in_([r.id for r in stored.values()])
                )
            ):
                memberships.setdefault(uid, set()).add(gid)
        ids = {
            u["external_id"]: (stored[u["external_id"]].id if u["external_id"] in stored else new_id("usr"))
            for u in users
        }
        managers = self._managers(s, users, ids)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        added_rows: list[dict[str, str]] = []
        removals: list[tuple[str, set[str]]] = []
        touched = set()
        for u, record, rhash in pairs:
            row = stored.get(u["external_id"])
            uid = ids[u["external_id"]]
            old_groups = memberships.get(uid, set())
            new_groups = (old_groups - authoritative) | members_by_ref.get(u["source_ref"] or "", set())
            added, removed = new_groups - old_groups, old_groups - new_groups
            manager_id = None
            if u["manager_ref"]:
                manager_id = managers.get(u["manager_ref"].lower())
                if manager_id is None:
                    self.unresolved_managers.add(uid)
                else:
                    self.unresolved_managers.discard(uid)
            group_part, group_digest = ctx.group_part(frozenset(new_groups))
            state = user_state(u, manager_id, group_part, self.raw_attributes_max_bytes)
            inputs = None if rhash is None else inputs_hash(rhash, manager_id, group_digest)
            h = content_hash(state)
            event, previous = None, None
            if row is None:
                snapshot = Snapshot(uid, state, utcnow(), 1)
                inserts.append(
                    {
                        "id": uid,
                        "directory_id": self.directory_id,
                        "external_id": u["external_id"],
                        "source_ref": u["source_ref"],
                        "attributes": u,
                        "source_record": record,
                        "state": state,
                        "content_hash": h,
                        "record_hash": rhash,
                        "inputs_hash": inputs,
                        "version": 1,
                        "created_at": snapshot.updated_at,
                        "updated_at": snapshot.updated_at,
                    }
                )
                event = "user.created"
            else:
                snapshot = Snapshot(uid, row.state, row.updated_at, row.version)
                if h != row.content_hash:
                    previous = previous_attributes(row.state, state)
                    if previous:
                        snapshot = Snapshot(uid, state, utcnow(), row.version + 1)
                        event = "user.updated"
                    # else only the hash's encoding changed: store it, tell nobody
                if (
                    event
                    or h != row.content_hash
                    or u["source_ref"] != row.source_ref
                    or rhash != row.record_hash
                    or inputs != row.inputs_hash
                    or u != row.attributes
                    or (record is not None and record != row.source_record)
                ):
                    updates.append(
                        {
                            "_id": uid,
                            "source_ref": u["source_ref"],
                            "attributes": u,
                            "source_record": row.source_record if record is None else record,
                            "state": snapshot.state,
                            "content_hash": h,
                            "record_hash": rhash,
                            "inputs_hash": inputs,
                            "version": snapshot.version,
                            "updated_at": snapshot.updated_at,
                        }
                    )
            if event or added or removed:
                user_json = Encoded(user_payload(snapshot, directory))
                if event:
                    outbox.emit(event, user_json, previous if event == "user.updated" else None, object_id=uid)
                for kind, gids in (("group.user_removed", removed), ("group.user_added", added)):
                    for gid in sorted(gids):
                        outbox.emit(
                            kind,
                            {"object": "group_membership", "user": user_json, "group": ctx.group_json(gid, directory)},
                            object_id=uid,
                        )
            added_rows.extend({"group_id": g, "user_id": uid, "directory_id": self.directory_id} for g in added)
            if removed:
                removals.append((uid, removed))
            touched.add(uid)
        self.result.users_written += len(inserts) + len(updates)
        users_table = table_of(User)
        if inserts:  # before the memberships that point at them
            s.execute(users_table.insert(), inserts)
        if updates:
            s.execute(users_table.update().where(users_table.c.id == bindparam("_id")), updates)
        for uid, gone in removals:
            s.execute(delete(Membership).where(Membership.user_id == uid, Membership.group_id.in_(gone)))
        if added_rows:
            s.execute(table_of(Membership).insert(), added_rows)
        return touched

    def unchanged(
        self,
        s: Session,
        ctx: DirectoryContext,
        hashes: Collection[str],
        authoritative: set[str],
        members_by_ref: Mapping[str, set[str]],
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The stored users with these record hashes, split in two: those whose state would
        come out as stored (same record, manager and groups: dirhook.sync.unchanged), by record
        hash their external id; and the others, by record hash their user id, to compute
        from what is stored. A hash two stored users share is in neither."""
        # Core rows through the session's connection: the ORM's row processing was a third
        # of this check (bench/ldap_full_sync.py, a full pass with nothing changed).
        conn = s.connection()
        rows: dict[str, Row[Any]] = {}
        shared: set[str] = set()
        for part in chunks(sorted(set(hashes)), 500):
            for r in conn.execute(
                select(*UNCHANGED_CHECK).where(User.directory_id == self.directory_id, User.record_hash.in_(part))
            ):
                if r.record_hash in rows:
                    shared.add(r.record_hash)
                rows[r.record_hash] = r
        for h in shared:
            del rows[h]
        if not rows:
            return {}, {}
        memberships: dict[str, set[str]] = {}
        for part in chunks([r.id for r in rows.values()], 500):
            for uid, gid in conn.execute(
                select(Membership.user_id, Membership.group_id).where(Membership.user_id.in_(part))
            ):
                memberships.setdefault(uid, set()).add(gid)
        managers: dict[str | None, str] = {}
        for part in chunks(sorted({r.manager_ref.lower() for r in rows.values() if r.manager_ref}), 500):
            managers.update(
                conn.execute(
                    select(User.source_ref, User.id).where(
                        User.directory_id == self.directory_id, User.source_ref.in_(part)
                    )
                ).all()
            )
        same: dict[str, str] = {}
        other: dict[str, str] = {}
        for h, r in rows.items():
            old_groups = memberships.get(r.id, set())
            new_groups = (old_groups - authoritative) | members_by_ref.get(r.source_ref or "", set())
            manager_id = managers.get(r.manager_ref.lower()) if r.manager_ref else None
            if (
                new_groups == old_groups
                and (manager_id is not None or not r.manager_ref)  # else: left to apply() to resolve
                and inputs_hash(h, manager_id, ctx.group_part(frozenset(new_groups))[1]) == r.inputs_hash
            ):
                same[h] = r.external_id
            else:
                other[h] = r.id
        return same, other

    def _managers(self, s: Session, users: list[dict[str, Any]], ids: dict[str, str]) -> dict[str, str]:
        """Manager references to user ids: this chunk's users first (some are not inserted
        yet), then the stored ones."""
        managers = {u["source_ref"]: ids[u["external_id"]] for u in users if u["source_ref"]}
        wanted = {u["manager_ref"].lower() for u in users if u["manager_ref"]} - managers.keys()
        for part in chunks(sorted(wanted), 500):
            managers.update(
                s.execute(
                    select(User.source_ref, User.id).where(
                        User.directory_id == self.directory_id, User.source_ref.in_(part)
                    )
                ).all()
            )
        return managers


def delete_users(s: Session, outbox: Outbox, ctx: DirectoryContext, user_ids: set[str]) -> None:
    """Delete the users; each gets group.user_removed for its groups first, then user.deleted."""
    directory = outbox.directory
    for part in chunks(sorted(user_ids), 500):
        memberships: dict[str, list[str]] = {}
        for uid, gid in s.execute(select(Membership.user_id, Membership.group_id).where(Membership.user_id.in_(part))):
            memberships.setdefault(uid, []).append(gid)
        for user in s.scalars(select(User).where(User.id.in_(part))):
            for gid in sorted(memberships.get(user.id, [])):
                outbox.emit(
                    "group.user_removed",
                    {
                        "object": "group_membership",
                        "user": user_payload(user, directory),
                        "group": group_payload(ctx.groups[gid], directory),
                    },
                    object_id=user.id,
                )
            outbox.emit("user.deleted", user_payload(user, directory), object_id=user.id)
        s.execute(delete(Membership).where(Membership.user_id.in_(part)))
        s.execute(delete(User).where(User.id.in_(part)))
