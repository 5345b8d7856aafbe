"""SyncEngine: a pass's phases in order. Each phase commits in chunks and reports progress;
what the phases share (the directory's context, the pass's result) lives on the engine."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Directory, HeldDeletion, Membership, User
from dirhook.models import NormalizedGroup
from dirhook.normalize import normalize_group, normalize_user, reference_key, source_record
from dirhook.outbox import Outbox
from dirhook.providers.base import Changes, SourceEntry, SourceUnavailable
from dirhook.sync.context import DirectoryContext, GroupSignature
from dirhook.sync.deletions import DeletionGuard
from dirhook.sync.groups import apply_groups, apply_nesting, delete_groups, members_of
from dirhook.sync.result import PassResult, chunks
from dirhook.sync.unchanged import fingerprint, record_hash
from dirhook.sync.users import UserPair, UserWriter, delete_users, stored_users

log = logging.getLogger(__name__)

NO_GROUPS_WARNING = "the source returned no groups; no group was deleted"
NO_USERS_WARNING = "the source returned no users; no user was deleted"


class SyncEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory_id: str,
        mapping: Mapping[str, Any],
        *,
        chunk_size: int = 500,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        max_payload_bytes: int = 512 * 1024,
        raw_attributes_max_bytes: int = 32 * 1024,
        deletion_threshold: tuple[int, float] = (500, 10.0),
        on_commit: Callable[[set[str]], None] | None = None,
        skip_unchanged: bool = True,
    ):
        self.sessions = sessions
        self.directory_id = directory_id
        self.mapping = mapping
        self.chunk_size = chunk_size
        self.max_payload_bytes = max_payload_bytes
        self.raw_attributes_max_bytes = raw_attributes_max_bytes
        self.deletion_threshold = deletion_threshold
        # Off only to check, in tests, that recognizing users unchanged changes no outcome.
        self.skip_unchanged = skip_unchanged
        self._fingerprint = fingerprint(mapping["user"], raw_attributes_max_bytes)
        # Told the endpoints with new pending deliveries after every committed chunk, so
        # delivery starts while a long pass is still reading.
        self.on_commit = on_commit or (lambda _endpoints: None)
        self._touched: set[str] = set()  # endpoints with deliveries flushed since the last commit report
        self.on_progress = on_progress or (lambda _p: None)

    # Set afresh by every pass (_begin).
    result: PassResult
    guard: DeletionGuard
    users: UserWriter
    ctx: DirectoryContext

    def _begin(self, full: bool) -> PassResult:
        self.result = PassResult(full=full)
        self.guard = DeletionGuard(self.sessions, self.directory_id, self.deletion_threshold, self.result)
        self.users = UserWriter(self.directory_id, self.raw_attributes_max_bytes, self.result)
        self.ctx = DirectoryContext.load(self.sessions, self.directory_id)
        return self.result

    # -- the passes ------------------------------------------------------------------------------
    def run(self, changes: Changes) -> PassResult:
        result = self._begin(changes.full)
        result.warnings.extend(changes.notes)
        if self.skip_unchanged and changes.known_records is not None:
            # First: a source reading users apart (the LDAP reader) starts while groups are read.
            changes.known_records(self._fingerprint, self._stored_record_hashes())
        before = self.ctx.signatures()
        fetched_ids, members_by_ref = self._read_groups(changes)
        cascade = self._delete_missing_groups(changes, fetched_ids, before)
        self._progress("groups")
        seen_users, processed = self._read_users(changes, fetched_ids, members_by_ref)
        if not changes.full and fetched_ids:
            processed |= self._recompute_members(changes, fetched_ids, members_by_ref, processed)
        if changes.member_changes:
            processed |= self._apply_member_changes(changes.member_changes)
        gone_users = self._delete_missing_users(changes, seen_users)
        # Consequences: users whose groups changed through a group, and managers that
        # appeared later in the stream.
        self._reprocess(((cascade - processed) | self.users.unresolved_managers) - gone_users, set(), {})
        self._finish(changes)
        self._progress("done")
        return result

    def recompute(self, renormalize: bool = True) -> PassResult:
        """Recompute every user from what is stored (no directory read): after a change of
        role mappings, roles or the attribute mapping. Emits events only where a user changed."""
        result = self._begin(full=False)
        with self.sessions() as s:
            user_ids = set(s.scalars(select(User.id).where(User.directory_id == self.directory_id)))
        self._reprocess(user_ids, set(), {}, renormalize=renormalize)
        self._progress("done")
        return result

    def apply_held_deletions(self) -> PassResult:
        """An operator approved: delete what the last pass held (still stored), with the events."""
        result = self._begin(full=False)
        users, held_groups = self.guard.held()
        groups = {i for i in held_groups if i in self.ctx.groups}
        cascade: set[str] = set()
        if groups:
            before = self.ctx.signatures()
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                cascade = delete_groups(s, outbox, self.ctx, groups)
                self._flush(outbox)
            self._reload()
            cascade |= members_of(self.sessions, self.ctx.changed_groups(before, groups))
        with self.sessions.begin() as s:
            outbox = self._outbox(s)
            present = set(s.scalars(select(User.id).where(User.id.in_(users)))) if users else set()
            delete_users(s, outbox, self.ctx, present)
            self._flush(outbox)
            s.execute(delete(HeldDeletion).where(HeldDeletion.directory_id == self.directory_id))
        self._reprocess(cascade - users, set(), {})
        return result

    # -- the phases of a pass ----------------------------------------------------------------------
    def _read_groups(self, changes: Changes) -> tuple[set[str], dict[str, set[str]]]:
        """1. Groups: few enough to hold (with their member references) for the whole pass.
        Returns their ids and, by member reference, the groups that list each member."""
        fetched: list[NormalizedGroup] = [
            normalize_group(self.mapping["group"], entry.attributes, reference_key(entry.ref))
            for entry in changes.groups
        ]
        self.result.groups_read = len(fetched)
        if not fetched:  # e.g. a SCIM push of users: nothing below changes, nor the context
            return set(), {}
        fetched_ids: set[str] = set()
        for chunk in chunks(fetched, self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                fetched_ids.update(apply_groups(s, outbox, self.directory_id, chunk))
                self._flush(outbox)
        self._reload()
        ext_to_group = {g.external_id: gid for gid, g in self.ctx.groups.items()}
        if apply_nesting(
            self.sessions, self.ctx, self.directory_id, {ext_to_group[g.external_id]: g.member_refs for g in fetched}
        ):
            self._reload()
        members_by_ref: dict[str, set[str]] = {}
        for g in fetched:
            gid = ext_to_group[g.external_id]
            for ref in g.member_refs:
                if key := reference_key(ref):
                    members_by_ref.setdefault(key, set()).add(gid)
        return fetched_ids, members_by_ref

    def _delete_missing_groups(
        self, changes: Changes, fetched_ids: set[str], before: dict[str, GroupSignature]
    ) -> set[str]:
        """2. Group deletions, before the users, so users are computed against the final
        groups. Returns the users whose groups changed through a group."""
        groups = self.ctx.groups
        if changes.full:
            present: set[str] | None = {groups[gid].external_id for gid in fetched_ids}
        else:
            present = _listed(changes.group_ids)
        gone = set() if present is None else {gid for gid, g in groups.items() if g.external_id not in present}
        if present is not None and not present and groups:
            gone = set()
            self.result.warnings.append(NO_GROUPS_WARNING)
        # Held deletions are decided afresh only by a pass that decides deletions (a listing,
        # or deletions it is told of and may hold): never wiped by an unrelated write such as
        # a SCIM push, which would let a pass's held mass deletion vanish unapproved.
        if (
            changes.full
            or changes.group_ids is not None
            or changes.user_ids is not None
            or (changes.hold_explicit_deletions and (changes.deleted_user_ids or changes.deleted_group_ids))
        ):
            self.guard.clear_held()
        told = {gid for gid, g in groups.items() if g.external_id in changes.deleted_group_ids}
        if changes.hold_explicit_deletions:
            gone = self.guard.allow("group", gone | told, len(groups))
        else:
            gone = self.guard.allow("group", gone, len(groups)) | told
        cascade: set[str] = set()
        if gone:
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                cascade = delete_groups(s, outbox, self.ctx, gone)
                self._flush(outbox)
            self._reload()
        # Users whose groups or roles changed through a group: renamed, nested, unnested,
        # deleted, or granting other roles.
        cascade |= members_of(self.sessions, self.ctx.changed_groups(before, gone))
        if (warning := self.ctx.cycle_warning()) is not None:
            self.result.warnings.append(warning)
        return cascade

    def _read_users(
        self, changes: Changes, fetched_ids: set[str], members_by_ref: dict[str, set[str]]
    ) -> tuple[set[str], set[str]]:
        """3. Users, streamed page by page. Returns the external ids read and the user ids written.
        A user whose record, manager and groups are as stored is counted and left as it is,
        before it is normalized (dirhook.sync.unchanged)."""
        seen: set[str] = set()
        processed: set[str] = set()
        for chunk in chunks(changes.users, self.chunk_size):
            # (entry, the record as stored or None when the source named it by its hash, hash)
            read: list[tuple[SourceEntry, dict[str, Any] | None, str | None]] = []
            for e in chunk:
                if e.unchanged:
                    read.append((e, None, e.record_hash))
                    continue
                # The record as stored: its text made once, and a later re-normalization (a
                # mapping change) starts from the same values.
                record = dict(e.attributes) if e.prepared is not None else source_record(e.attributes)
                rhash = e.record_hash or record_hash(self._fingerprint, reference_key(e.ref), record)
                read.append((e, record, rhash))
            self.result.users_read += len(read)
            with self.sessions.begin() as s:
                same, other = (
                    self.users.unchanged(s, self.ctx, [h for _e, _r, h in read if h], fetched_ids, members_by_ref)
                    if self.skip_unchanged
                    else ({}, {})
                )
                pairs: list[UserPair] = []
                from_stored: dict[str, str] = {}  # user id -> record hash: named by the source by hash only
                for entry, as_stored, digest in read:
                    if digest is not None and digest in same:
                        seen.add(same[digest])
                        self.result.users_unchanged += 1
                    elif as_stored is None:
                        if digest is None or digest not in other:  # one writer per directory: only a bug
                            raise SourceUnavailable(
                                "the source named a stored user by its record hash, and no single stored "
                                "user has it; the pass is retried"
                            )
                        from_stored[other[digest]] = digest
                    else:
                        user = entry.prepared or normalize_user(
                            self.mapping["user"], as_stored, reference_key(entry.ref)
                        ).model_dump(mode="json")
                        pairs.append((user, as_stored, digest))
                stored = (
                    stored_users(
                        s,
                        (User.directory_id == self.directory_id)
                        & User.external_id.in_([u["external_id"] for u, _r, _h in pairs]),
                    )
                    if pairs
                    else {}
                )
                if from_stored:
                    rows = stored_users(s, User.id.in_(from_stored))
                    pairs.extend((r.attributes, None, from_stored[r.id]) for r in rows.values())
                    stored.update(rows)
                seen.update(u["external_id"] for u, _r, _h in pairs)
                outbox = self._outbox(s)
                processed.update(
                    self.users.apply(s, outbox, self.ctx, pairs, fetched_ids, members_by_ref, stored=stored)
                )
                self._flush(outbox)
            self._progress("users")
        return seen, processed

    def _stored_record_hashes(self) -> list[str]:
        """The record hashes of the directory's users, those two users share left out."""
        with self.sessions() as s:
            counts = Counter(
                s.scalars(
                    select(User.record_hash).where(
                        User.directory_id == self.directory_id, User.record_hash.is_not(None)
                    )
                )
            )
        return [h for h, n in counts.items() if h is not None and n == 1]

    def _recompute_members(
        self, changes: Changes, fetched_ids: set[str], members_by_ref: dict[str, set[str]], processed: set[str]
    ) -> set[str]:
        """4. Incremental: members of changed groups whose own entry did not change."""
        with self.sessions() as s:
            affected = set(s.scalars(select(Membership.user_id).where(Membership.group_id.in_(fetched_ids))))
            for part in chunks(list(members_by_ref), 500):
                affected.update(
                    s.scalars(select(User.id).where(User.directory_id == self.directory_id, User.source_ref.in_(part)))
                )
            # A user the source deleted in this pass loses its groups with its deletion
            # (group.user_removed, user.deleted), not first with a user.updated.
            doomed = (
                set(
                    s.scalars(
                        select(User.id).where(
                            User.directory_id == self.directory_id, User.external_id.in_(changes.deleted_user_ids)
                        )
                    )
                )
                if changes.deleted_user_ids
                else set()
            )
        self._reprocess(affected - processed - doomed, fetched_ids, members_by_ref)
        return affected

    def _apply_member_changes(self, member_changes: dict[str, tuple[set[str], set[str]]]) -> set[str]:
        """4b. Members a source added to or removed from a group, one group at a time: only
        those users are recomputed (their other groups stay as stored)."""
        by_ref = {g.source_ref: gid for gid, g in self.ctx.groups.items() if g.source_ref}
        done: set[str] = set()
        for group_ref, (added, removed) in sorted(member_changes.items()):
            gid = by_ref.get(reference_key(group_ref) or "")
            if gid is None:  # not projected (yet): the directory's next full pass brings it
                self.result.warnings.append(f"membership change of unknown group {group_ref}: left to the next pass")
                continue
            joining = {key for ref in added if (key := reference_key(ref))}
            named = joining | {key for ref in removed if (key := reference_key(ref))}
            with self.sessions() as s:
                users = {
                    uid
                    for part in chunks(sorted(named), 500)
                    for uid in s.scalars(
                        select(User.id).where(User.directory_id == self.directory_id, User.source_ref.in_(part))
                    )
                }
            self._reprocess(users, {gid}, {key: {gid} for key in joining})
            done |= users
        return done

    def _delete_missing_users(self, changes: Changes, seen: set[str]) -> set[str]:
        """5. User deletions; returns the ids deleted."""
        gone: set[str] = set()
        present = seen if changes.full else _listed(changes.user_ids)
        # An incremental pass that names no deletion and lists nothing skips this: it would
        # read every stored user's id for nothing (0.5 s at 100,000 users).
        with self.sessions.begin() as s:
            outbox = self._outbox(s)
            stored: dict[str, str] = (
                dict(s.execute(select(User.external_id, User.id).where(User.directory_id == self.directory_id)).all())
                if present is not None or changes.deleted_user_ids
                else {}
            )
            if present is not None:
                if not present and stored:
                    self.result.warnings.append(NO_USERS_WARNING)
                else:
                    gone = {uid for ext, uid in stored.items() if ext not in present}
            told = {stored[ext] for ext in changes.deleted_user_ids if ext in stored}
            if changes.hold_explicit_deletions:
                gone = self.guard.allow("user", gone | told, len(stored), s)
            else:
                gone = self.guard.allow("user", gone, len(stored), s) | told
            delete_users(s, outbox, self.ctx, gone)
            self._flush(outbox)
        return gone

    def _finish(self, changes: Changes) -> None:
        """6. The cursor (unless deletions are held) and, if anything changed, directory.sync_completed."""
        result = self.result
        with self.sessions.begin() as s:
            directory = s.get(Directory, self.directory_id)
            assert directory is not None, self.directory_id
            if not result.held:
                directory.cursor = dict(changes.next_cursor)
            # else the cursor stays: a source that reports deletions once (syncrepl, Graph)
            # reports the held ones again on the next pass, until they are approved.
            if result.events_total and changes.announce:
                outbox = self._outbox(s)
                outbox.emit(
                    "directory.sync_completed",
                    {
                        "object": "directory",
                        "id": directory.id,
                        "organization_id": directory.organization_id,
                        "name": directory.name,
                        "provider": directory.provider,
                        "full": result.full,
                        "users_read": result.users_read,
                        "groups_read": result.groups_read,
                        "changes": dict(result.events),
                    },
                    object_id=directory.id,
                )
                self._flush(outbox)

    # -- helpers ---------------------------------------------------------------------------------
    def _reload(self) -> None:
        self.ctx = DirectoryContext.load(self.sessions, self.directory_id)

    def _reprocess(
        self,
        user_ids: set[str],
        authoritative: set[str],
        members_by_ref: Mapping[str, set[str]],
        renormalize: bool = False,
    ) -> None:
        """Recompute users from what is stored (their groups, roles or manager changed, not
        their entry); with ``renormalize``, from their source record through the current mapping."""
        for part in chunks(sorted(user_ids), self.chunk_size):
            with self.sessions.begin() as s:
                outbox = self._outbox(s)
                stored = stored_users(s, User.id.in_(part))
                pairs: list[UserPair] = []
                for r in stored.values():
                    if renormalize and r.source_record is not None:
                        user = normalize_user(self.mapping["user"], r.source_record, r.source_ref)
                        rhash = record_hash(self._fingerprint, r.source_ref, r.source_record)
                        pairs.append((user.model_dump(mode="json"), None, rhash))
                    elif renormalize:  # no record to normalize again: never recognized unchanged
                        pairs.append((r.attributes, None, None))
                    else:
                        pairs.append((r.attributes, None, r.record_hash))
                self.users.apply(s, outbox, self.ctx, pairs, authoritative, members_by_ref, stored=stored)
                self._flush(outbox)

    def _outbox(self, s: Session) -> Outbox:
        directory = s.get(Directory, self.directory_id)
        assert directory is not None, self.directory_id  # the activity checked it exists
        return Outbox(s, directory, self.max_payload_bytes)

    def _flush(self, outbox: Outbox) -> None:
        """Write the chunk's events; the caller's transaction commits them."""
        outbox.flush()
        for k, v in outbox.counts.items():
            self.result.events[k] = self.result.events.get(k, 0) + v
        self.result.endpoint_ids |= outbox.endpoint_ids_touched
        self._touched |= outbox.endpoint_ids_touched

    def _progress(self, stage: str) -> None:
        # Called between transactions: what was flushed so far is committed.
        if self._touched:
            touched, self._touched = self._touched, set()
            self.on_commit(touched)
        self.on_progress(
            {
                "stage": stage,
                "users_read": self.result.users_read,
                "groups_read": self.result.groups_read,
                "users_written": self.result.users_written,
                "users_unchanged": self.result.users_unchanged,
                "events": self.result.events_total,
            }
        )


def _listed(lister: Callable[[], Iterable[str]] | None) -> set[str] | None:
    """Every external id the source lists now, or None when it lists none (it names deletions)."""
    return set(lister()) if lister is not None else None
