"""The SCIM directory's rows: storing, removing and reading resources, a group's members
as rows, the indexed values, and searches answered by SQL (blocking database work: the
storage runs it in worker threads, off the event loop)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scim2_models import NotFoundException, PreconditionFailedException, TooManyException, UniquenessException
from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import table_of
from dirhook.db.scim_tables import ScimMember, ScimResource, ScimValue
from dirhook.scim.bookmarks import Bookmarks
from dirhook.scim.index import indexed_values, keys, member_body, member_rows, version_of
from dirhook.scim.pending import record_deactivation, record_deletion
from dirhook.scim.query import ordering, sort_column, sort_key, translate, typed_rows
from dirhook.sync.result import chunks


def stamp(moment: datetime) -> str:
    """SCIM's dateTime (xsd:dateTime, UTC with a Z)."""
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Stored:
    """A write's outcome, as its projection needs it."""

    body: dict[str, Any]  # as stored (a group's without members)
    changed: bool = True
    attributes_changed: bool = True  # more than a group's members
    added: dict[str, dict[str, Any]] = field(default_factory=dict)  # members, by id
    removed: set[str] = field(default_factory=set)
    nesting: bool = False  # a group among the members added or removed
    # A user as it is projected: a deactivation awaiting deletion protection keeps it active.
    projected: dict[str, Any] | None = None
    deprovisioned: bool = False  # a deactivation was recorded pending: the workflow settles it

    def __post_init__(self) -> None:
        self.nesting = self.nesting or any(r.get("member_type") == "Group" for r in self.added.values())


@dataclass
class Found:
    total: int
    rows: list[tuple[str, dict[str, Any]]]  # (resource type, body) of the page
    exact: bool  # False: candidates to filter, sort and page by the evaluator


# Matches sorted in Python rather than by SQL's ORDER BY (see ScimRows.search).
SORTED_HERE = 1000


class ScimRows:
    def __init__(self, sessions: sessionmaker[Session], directory_id: str, scan_limit: int):
        self.sessions = sessions
        self.directory_id = directory_id
        self.bookmarks = Bookmarks()
        # Resources the evaluator may read for a filter SQL cannot answer (RFC 7644's tooMany beyond).
        self.scan_limit = scan_limit

    # -- reading ---------------------------------------------------------------------------
    def body(self, resource_type: str, resource_id: str, with_members: bool = True) -> dict[str, Any]:
        with self.sessions() as s:
            row = s.get(ScimResource, (self.directory_id, resource_id))
            if row is None or row.resource_type != resource_type or row.hidden_since is not None:
                raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
            body = dict(row.body)
            if resource_type == "Group" and with_members:
                body["members"] = self.members(s, [resource_id]).get(resource_id, [])
            return body

    def members(self, s: Session, group_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for part in chunks(group_ids, 500):
            for row in s.execute(
                select(ScimMember.group_id, ScimMember.member_id, ScimMember.member_type, ScimMember.display)
                .where(
                    ScimMember.directory_id == self.directory_id,
                    ScimMember.group_id.in_(part),
                    ~exists().where(  # a user the IdP deleted is no member for it any more
                        ScimResource.directory_id == self.directory_id,
                        ScimResource.id == ScimMember.member_id,
                        ScimResource.hidden_since.is_not(None),
                    ),
                )
                .order_by(ScimMember.group_id, ScimMember.member_id)
            ):
                found.setdefault(row.group_id, []).append(member_body(row))
        return found

    def search(
        self,
        names: list[str],
        scim_filter: Any,
        sort_by: Any,
        descending: bool,
        start: int,
        count: int | None,
        with_members: bool,
    ) -> Found:
        """One page in SQL when the filter and the order can be said in SQL; otherwise the
        candidates (a superset, at most ``scan_limit``) for the evaluator."""
        single = names[0] if len(names) == 1 else None
        condition = translate(scim_filter, self.directory_id, single) if single else None
        column = sort_column(sort_by, single) if single else None
        where = typed_rows(self.directory_id, names)
        with self.sessions() as s:
            if condition is not None and condition.exact and column is not None:
                where.append(condition.clause)
                total = s.scalar(select(func.count()).select_from(ScimResource).where(*where)) or 0
                stop = total if count is None else min(total, start + count)
                if total <= SORTED_HERE:
                    # A lookup's few matches, ordered here: SQL's ORDER BY would walk the order
                    # index over the whole directory rather than the lookup's own index.
                    q = select(ScimResource.resource_type, ScimResource.body, column, ScimResource.id).where(*where)
                    matches = sorted(s.execute(q), key=lambda r: sort_key(r[2], r[3]), reverse=descending)
                    rows = [(r[0], r[1]) for r in matches[start:stop]]
                else:
                    rows = self._page(s, where, column, descending, start, stop, (scim_filter, sort_by, names))
                exact = True
            else:
                if condition is not None:
                    where.append(condition.clause)
                candidates = s.scalar(select(func.count()).select_from(ScimResource).where(*where)) or 0
                if candidates > self.scan_limit:
                    raise TooManyException(
                        detail=f"this filter or sort would read {candidates} resources, more than the "
                        f"{self.scan_limit} evaluated outside the index; filter on userName, externalId, "
                        "displayName, emails or meta.lastModified"
                    )
                q = select(ScimResource.resource_type, ScimResource.body).where(*where).order_by(ScimResource.id)
                rows = [(t, b) for t, b in s.execute(q)]
                total, exact = len(rows), False
            groups = [b["id"] for t, b in rows if t == "Group"]
            if groups and (with_members or not exact):
                members = self.members(s, groups)
                rows = [(t, {**b, "members": members.get(b["id"], [])} if t == "Group" else b) for t, b in rows]
        return Found(total, rows, exact)

    def _page(
        self,
        s: Session,
        where: list[Any],
        column: Any,
        descending: bool,
        start: int,
        stop: int,
        query: tuple[Any, ...],
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows ``start`` to ``stop`` in order. A client paging in the default order (Okta's
        import: startIndex=1, 101, 201…) resumes after the last id of its previous page
        instead of an OFFSET that reads every row before it."""
        key = (str(query[0]), str(query[1]), tuple(query[2]))
        q = select(ScimResource.resource_type, ScimResource.body, ScimResource.id).where(*where)
        after = self.bookmarks.find(key, start) if column is ScimResource.id and not descending else None
        if after is not None:
            q = q.where(ScimResource.id > after).order_by(ScimResource.id)
        else:
            q = q.order_by(*ordering(column, descending)).offset(start)
        found = list(s.execute(q.limit(max(0, stop - start))))
        if found and column is ScimResource.id and not descending:
            self.bookmarks.keep(key, start + len(found), found[-1][2])
        return [(r[0], r[1]) for r in found]

    # -- writing ---------------------------------------------------------------------------
    def _check_unique(self, s: Session, resource_type: str, unique_key: str | None, own_id: str) -> None:
        if unique_key is None:
            return
        taken = s.scalar(
            select(ScimResource.id).where(
                ScimResource.directory_id == self.directory_id,
                ScimResource.resource_type == resource_type,
                ScimResource.unique_key == unique_key,
                ScimResource.id != own_id,
            )
        )
        if taken:
            raise UniquenessException(detail=f"userName is already taken by {taken}")

    def _existing(self, s: Session, resource_type: str, resource_id: str, expected_version: str | None) -> ScimResource:
        row = s.get(ScimResource, (self.directory_id, resource_id))
        if row is None or row.resource_type != resource_type or row.hidden_since is not None:
            raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
        if expected_version is not None and expected_version != row.version:
            raise PreconditionFailedException(detail=f"the resource is at version {row.version}")
        return row

    def store(
        self,
        resource_type: str,
        body: dict[str, Any],
        expected_version: str | None,
        create: bool,
        guard_deactivations: bool = False,
    ) -> Stored:
        """Writes the resource. With ``guard_deactivations``, a user's deactivation is stored
        as asked and recorded pending (dirhook/scim/deprovisions.py): its projection keeps the
        user active (``Stored.projected``) until the deprovision is applied."""
        now = datetime.now(UTC)
        match_key, unique_key = keys(resource_type, body)
        wanted = member_rows(body.pop("members", None)) if resource_type == "Group" else {}
        try:
            with self.sessions.begin() as s:
                self._check_unique(s, resource_type, unique_key, body["id"])
                row = None if create else self._existing(s, resource_type, body["id"], expected_version)
                before = dict(row.body) if row is not None else {}
                created = now if row is None else row.created_at
                added, removed, revision, nesting = (
                    self._member_changes(s, row, body["id"], wanted) if wanted or row else ({}, set(), 0, False)
                )
                body["meta"] = {"resourceType": resource_type, "created": stamp(created), "lastModified": stamp(now)}
                version = version_of(body, revision)
                if row is not None and version == row.version:
                    # Nothing changed: same version, no write (RFC 7644 §3.14 allows it).
                    return Stored(dict(row.body), changed=False, attributes_changed=False)
                attributes_changed = row is None or {k: v for k, v in row.body.items() if k != "meta"} != {
                    k: v for k, v in body.items() if k != "meta"
                }
                body["meta"]["version"] = version
                if row is None:
                    s.add(
                        ScimResource(
                            directory_id=self.directory_id,
                            id=body["id"],
                            resource_type=resource_type,
                            match_key=match_key,
                            unique_key=unique_key,
                            external_id=body.get("externalId"),
                            body=body,
                            version=version,
                            members_revision=revision,
                            created_at=created,
                            updated_at=now,
                        )
                    )
                    s.flush()  # the row before the rows that name it
                else:
                    row.match_key, row.unique_key, row.external_id = match_key, unique_key, body.get("externalId")
                    row.body, row.version, row.updated_at, row.members_revision = body, version, now, revision
                self._write_members(s, body["id"], added, removed)
                self._write_values(s, resource_type, body, fresh=row is None)
                projected, deprovisioned = body, False
                if resource_type == "User" and row is not None:
                    projected, deprovisioned = record_deactivation(
                        s, self.directory_id, before, body, guard_deactivations
                    )
        except IntegrityError:  # a concurrent write from another process took the userName
            raise UniquenessException(detail="userName is already taken") from None
        stored = Stored(body, True, attributes_changed, added, removed, nesting=nesting)
        stored.projected, stored.deprovisioned = projected, deprovisioned
        return stored

    def _member_changes(
        self, s: Session, row: ScimResource | None, group_id: str, wanted: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, dict[str, Any]], set[str], int, bool]:
        """What a whole member list changes of the stored one: (added, removed, new revision,
        whether a group was among the removed)."""
        current = self._current_members(s, group_id) if row is not None else {}
        self._type_members(s, wanted)
        added = {m: r for m, r in wanted.items() if current.get(m) != (r["member_type"], r["display"])}
        removed = current.keys() - wanted.keys()
        revision = row.members_revision if row is not None else 0
        nesting = any(current[m][0] == "Group" for m in removed)
        return added, removed, revision + 1 if added or removed else revision, nesting

    def _current_members(
        self, s: Session, group_id: str, only: set[str] | None = None
    ) -> dict[str, tuple[str | None, str | None]]:
        """The group's stored members (of ``only``, when given): id → (type, display)."""
        q = select(ScimMember.member_id, ScimMember.member_type, ScimMember.display).where(
            ScimMember.directory_id == self.directory_id, ScimMember.group_id == group_id
        )
        if only is not None:
            q = q.where(ScimMember.member_id.in_(only))
        return {m: (t, d) for m, t, d in s.execute(q)}

    def _type_members(self, s: Session, members: dict[str, dict[str, Any]]) -> None:
        """Members given without a type get the type of the resource they name (for $ref)."""
        untyped = [m for m, r in members.items() if not r.get("member_type")]
        for part in chunks(untyped, 500):
            for resource_id, resource_type in s.execute(
                select(ScimResource.id, ScimResource.resource_type).where(
                    ScimResource.directory_id == self.directory_id, ScimResource.id.in_(part)
                )
            ):
                members[resource_id]["member_type"] = resource_type

    def _write_members(
        self, s: Session, group_id: str, added: dict[str, dict[str, Any]], removed: Iterable[str]
    ) -> None:
        gone = set(removed) | set(added)  # re-added: its type or display changed
        for part in chunks(sorted(gone), 500):
            s.execute(
                delete(ScimMember).where(
                    ScimMember.directory_id == self.directory_id,
                    ScimMember.group_id == group_id,
                    ScimMember.member_id.in_(part),
                )
            )
        if added:
            s.execute(
                table_of(ScimMember).insert(),
                [{"directory_id": self.directory_id, "group_id": group_id, **r} for r in added.values()],
            )

    def _write_values(self, s: Session, resource_type: str, body: dict[str, Any], fresh: bool) -> None:
        if not fresh:
            s.execute(
                delete(ScimValue).where(
                    ScimValue.directory_id == self.directory_id, ScimValue.resource_id == body["id"]
                )
            )
        pairs = indexed_values(resource_type, body)
        if pairs:
            s.execute(
                table_of(ScimValue).insert(),
                [
                    {"directory_id": self.directory_id, "resource_id": body["id"], "attribute": a, "value": v}
                    for a, v in sorted(pairs)
                ],
            )

    def change_members(
        self, group_id: str, add: dict[str, dict[str, Any]], remove: set[str], expected_version: str | None
    ) -> Stored:
        """One PATCH's member additions and removals: rows for those members only."""
        now = datetime.now(UTC)
        with self.sessions.begin() as s:
            row = self._existing(s, "Group", group_id, expected_version)
            named = set(add) | remove
            current = self._current_members(s, group_id, named)
            self._type_members(s, add)
            added = {
                m: r for m, r in add.items() if m not in remove and current.get(m) != (r["member_type"], r["display"])
            }
            removed = {m for m in remove if m in current}
            if not added and not removed:
                return Stored(dict(row.body), changed=False, attributes_changed=False)
            self._write_members(s, group_id, added, removed)
            self._bump(row, now)
            nesting = any(current[m][0] == "Group" for m in removed)
            return Stored(dict(row.body), True, False, added, removed, nesting=nesting)

    def _bump(self, row: ScimResource, now: datetime) -> None:
        body = dict(row.body)
        row.members_revision += 1
        body["meta"] = {**body.get("meta", {}), "lastModified": stamp(now)}
        body["meta"]["version"] = row.version = version_of(body, row.members_revision)
        row.body, row.updated_at = body, now

    def remove(self, resource_type: str, resource_id: str, expected_version: str | None) -> None:
        with self.sessions.begin() as s:
            self._existing(s, resource_type, resource_id, expected_version)
        self.purge(resource_id)

    def defer_delete(self, resource_id: str, expected_version: str | None) -> None:
        """A user's deletion, through deletion protection (dirhook/scim/deprovisions.py): the
        SCIM API stops showing it and its userName is free; the rows stay until it is applied."""
        with self.sessions.begin() as s:
            record_deletion(s, self._existing(s, "User", resource_id, expected_version))

    def purge(self, resource_id: str) -> None:
        """Deletes the resource, shown or hidden; a deleted user leaves its groups (their rows only)."""
        now = datetime.now(UTC)
        with self.sessions.begin() as s:
            row = s.get(ScimResource, (self.directory_id, resource_id))
            if row is None:
                return
            s.delete(row)
            s.execute(
                delete(ScimValue).where(
                    ScimValue.directory_id == self.directory_id, ScimValue.resource_id == resource_id
                )
            )
            mine = ScimMember.directory_id == self.directory_id
            s.execute(delete(ScimMember).where(mine, ScimMember.group_id == resource_id))
            groups = list(s.scalars(select(ScimMember.group_id).where(mine, ScimMember.member_id == resource_id)))
            if groups:
                s.execute(delete(ScimMember).where(mine, ScimMember.member_id == resource_id))
                for group in s.scalars(
                    select(ScimResource).where(
                        ScimResource.directory_id == self.directory_id, ScimResource.id.in_(groups)
                    )
                ):
                    self._bump(group, now)

    def member_ids(self, group_id: str) -> list[str]:
        with self.sessions() as s:
            return list(self._current_members(s, group_id))
