"""scim2-server's storage for one SCIM directory: resources in the ``scim_resources`` table,
and after every write, the change projected into dirhook's users, groups and events.

Each write holds its directory (dirhook/directory_lock.py: one writer per directory,
across API replicas and the workers' passes) from the write to the end of its projection
by the sync engine, a one-object incremental pass (the same normalize → diff → roles →
outbox path as LDAP): a full pass of the directory sees every push committed before it
and none half-way. Users created by parallel requests are stored and projected together,
in order, in one pass (dirhook/scim/group_commit.py), each answering after that commit.
A write that cannot get the directory in time answers 503 with Retry-After and changes
nothing. Reads take no lock: each page is one SELECT, answered by SQL where the filter
allows (dirhook/scim/query.py) rather than by scim2-server's evaluation over every
resource, which is kept for the filters SQL cannot say.

If a projection fails, the SCIM table stays the truth: the next write of that object, or a full pass of the directory (`POST /v1/directories/{id}/sync?mode=full` reads this table),
brings the users and groups back in line and emits what receivers missed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Union

from scim2_models import Resource, ResourceType, ResponseParameters, ScimFilter, SearchRequest
from scim2_server.service import ScimService
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.utils import parametrize
from sqlalchemy.orm import Session, sessionmaker

from dirhook.directory_lock import DirectoryLocks
from dirhook.providers.base import Changes, SourceEntry
from dirhook.scim.group_commit import GroupCommit
from dirhook.scim.records import group_record, user_record
from dirhook.scim.rows import ScimRows, Stored

log = logging.getLogger(__name__)

Project = Callable[[Changes], Awaitable[None]]
Settle = Callable[[], Awaitable[None]]


def type_name(resource_type: ResourceType) -> str:
    """The resource type's name ("User", "Group"); scim2-models types it optional."""
    return resource_type.name or ""


def _wants_members(parameters: ResponseParameters[Any] | None) -> bool:
    """Whether a response keeps a group's members (Okta and Entra list groups with
    ``excludedAttributes=members``: then they are not read at all)."""
    if parameters is None:
        return True
    if "members" in _top_names(parameters.excluded_attributes):
        return False
    return not parameters.attributes or "members" in _top_names(parameters.attributes)


def _top_names(paths: list[Any] | None) -> set[str]:
    """``members`` of ``members``, ``members.value`` or ``urn:…:Group:members``."""
    return {str(p).rsplit(":", 1)[-1].split(".")[0].lower() for p in paths or ()}


class DirectoryScimStorage(AsyncScimStorage):
    supports_cursors = False

    def __init__(
        self,
        directory_id: str,
        sessions: sessionmaker[Session],
        service: ScimService,
        project: Project,
        locks: DirectoryLocks,
        wait_seconds: float,
        scan_limit: int,
        settle: Settle,
        guard_deactivations: bool,
    ):
        self.directory_id = directory_id
        self.rows = ScimRows(sessions, directory_id, scan_limit)
        self.service = service
        self.project = project
        # Asks the directory's workflow to settle the pending deprovisions (deprovisions.py).
        self.settle = settle
        self.guard_deactivations = guard_deactivations
        # One writer at a time, users' creations committed in groups (group_commit.py).
        self.commits: GroupCommit[dict[str, Any], Stored] = GroupCommit(
            directory_id, locks, wait_seconds, self._create_users
        )

    # -- reading: no lock (a page is one consistent SELECT), off the event loop ----------------------
    def _resource(self, resource_type: ResourceType, body: dict[str, Any]) -> Resource[Any]:
        return self.service.get_model(resource_type).model_validate(body)

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        name = type_name(resource_type)
        body = await asyncio.to_thread(self.rows.body, name, resource_id, _wants_members(response_parameters))
        return self._resource(resource_type, body)

    async def search(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *, position: Any = None
    ) -> SearchPage:
        by_name = {type_name(rt): rt for rt in resource_types}
        start = search_request.start_index_0 or 0
        descending = search_request.sort_order == SearchRequest.SortOrder.descending
        found = await asyncio.to_thread(
            self.rows.search,
            list(by_name),
            search_request.filter,
            search_request.sort_by,
            descending,
            start,
            search_request.count,
            _wants_members(search_request),
        )
        if found.exact:  # dirhook's SQL answered: the page as it is
            return SearchPage(total=found.total, resources=[self._resource(by_name[t], b) for t, b in found.rows])
        # Otherwise scim2-models evaluates the filter on the (bounded) candidates, in a thread.
        return await asyncio.to_thread(self._evaluate, by_name, search_request, found.rows, start, descending)

    def _evaluate(
        self,
        by_name: dict[str, ResourceType],
        search_request: SearchRequest[Any],
        rows: list[tuple[str, dict[str, Any]]],
        start: int,
        descending: bool,
    ) -> SearchPage:
        resources = [self._resource(by_name[name], body) for name, body in rows]
        scim_filter = search_request.filter
        if scim_filter is not None and not scim_filter.models and resources:
            # A search at the root: the filter is read against each resource's own model.
            models = tuple(dict.fromkeys(type(r) for r in resources))
            scim_filter = parametrize(ScimFilter, Union[models])(str(scim_filter))  # noqa: UP007
        found = [r for r in resources if scim_filter is None or scim_filter.match(r)]
        if search_request.sort_by is not None:

            def order(resource: Resource[Any]) -> tuple[Any, ...]:  # missing values last, then by id
                value = search_request.sort_value(resource)
                return value is None, value if value is not None else "", resource.id

            found.sort(key=order, reverse=descending)
        stop = None if search_request.count is None else start + search_request.count
        return SearchPage(total=len(found), resources=found[start:stop])

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _dump(resource: Resource[Any]) -> dict[str, Any]:
        body = resource.model_dump()
        body.pop("password", None)  # never stored: dirhook syncs identities, not credentials
        body.get("meta", {}).pop("location", None)
        return body

    def writing(self) -> AbstractAsyncContextManager[None]:
        """Hold the directory (one writer: dirhook/directory_lock.py) for the block, unless
        this task holds it already; within the directory's write wait, else DirectoryBusy."""
        return self.commits.turn()

    def _entry(self, resource_type: str, body: dict[str, Any]) -> SourceEntry:
        record = user_record(body) if resource_type == "User" else group_record(body)
        return SourceEntry(ref=body["id"], attributes=record)

    async def _create_users(self, bodies: list[dict[str, Any]]) -> list[Stored | Exception]:
        """In a turn: users created by parallel requests, stored in one trip to a thread and
        projected in one pass (group_commit.py); each one's Stored or the error it answers."""

        def store_each() -> list[Stored | Exception]:
            results: list[Stored | Exception] = []
            for body in bodies:
                try:
                    results.append(self.rows.store("User", body, None, True))
                except Exception as e:  # e.g. a userName taken: that request's 409, not the others'
                    results.append(e)
            return results

        results = await asyncio.to_thread(store_each)
        stored = [r for r in results if isinstance(r, Stored)]
        try:
            await self._project_all([self._entry("User", r.projected or r.body) for r in stored if r.changed])
        except Exception as e:  # each stored one answers it; the rows stay for the next pass
            return [e if isinstance(r, Stored) else r for r in results]
        return results

    async def _project(
        self,
        resource_type: str,
        stored: Stored | None,
        deleted: str | None = None,
    ) -> None:
        users: list[SourceEntry] = []
        groups: list[SourceEntry] = []
        deltas: dict[str, tuple[set[str], set[str]]] = {}
        if stored is not None and stored.changed:
            if resource_type == "User":
                users.append(self._entry("User", stored.projected or stored.body))
            elif stored.attributes_changed or stored.nesting:
                # The whole group: its members are read (a rename changes every member's state).
                members = await asyncio.to_thread(self.rows.member_ids, stored.body["id"])
                groups.append(self._entry("Group", {**stored.body, "members": [{"value": m} for m in members]}))
            else:  # only members changed: those members, and no others, are projected
                deltas[stored.body["id"]] = (set(stored.added), set(stored.removed))
        await self._project_all(users, groups, deltas, {deleted} if deleted and resource_type == "Group" else set())

    async def _project_all(
        self,
        users: list[SourceEntry],
        groups: list[SourceEntry] | None = None,
        deltas: dict[str, tuple[set[str], set[str]]] | None = None,
        deleted_groups: set[str] | None = None,
    ) -> None:
        await self.project(
            Changes(
                full=False,
                groups=iter(groups or ()),
                users=iter(users),
                announce=False,
                hold_explicit_deletions=False,
                deleted_user_ids=set(),
                deleted_group_ids=deleted_groups or set(),
                member_changes=deltas or {},
            )
        )

    async def _published(self, resource_type: ResourceType, stored: Stored) -> Resource[Any]:
        body = stored.body
        if type_name(resource_type) == "Group":
            body = await asyncio.to_thread(self.rows.body, "Group", body["id"])
        return self._resource(resource_type, body)

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        body = self._dump(resource)
        body["id"] = uuid.uuid4().hex
        if type_name(resource_type) == "User":  # with the creations queued meanwhile
            stored = await self.commits.submit(body)
        else:
            async with self.writing():
                stored = await asyncio.to_thread(self.rows.store, "Group", body, None, True)
                await self._project("Group", stored)
        return await self._published(resource_type, stored)

    async def update(
        self, resource_type: ResourceType, resource: Resource[Any], *, expected_version: str | None = None
    ) -> Resource[Any]:
        body = self._dump(resource)
        async with self.writing():
            stored = await asyncio.to_thread(
                self.rows.store, type_name(resource_type), body, expected_version, False, self.guard_deactivations
            )
            await self._project(type_name(resource_type), stored)
        if stored.deprovisioned:
            await self.settle()
        return await self._published(resource_type, stored)

    async def change_members(
        self,
        group: ResourceType,
        group_id: str,
        add: dict[str, dict[str, Any]],
        remove: set[str],
        expected_version: str | None,
    ) -> Resource[Any]:
        """A PATCH that only adds or removes members: their rows, and their projection only.
        Returns the group without its members (the PATCH answers 204, or reads it again)."""
        async with self.writing():
            stored = await asyncio.to_thread(self.rows.change_members, group_id, add, remove, expected_version)
            await self._project("Group", stored)
        return self._resource(group, stored.body)

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        if type_name(resource_type) == "User":  # through deletion protection (deprovisions.py)
            async with self.writing():
                await asyncio.to_thread(self.rows.defer_delete, resource_id, expected_version)
            await self.settle()
            return
        async with self.writing():
            await asyncio.to_thread(self.rows.remove, type_name(resource_type), resource_id, expected_version)
            await self._project(type_name(resource_type), None, deleted=resource_id)
