"""scim2-server's storage for one SCIM directory: resources in the ``scim_resources`` table,
and after every write, the change projected into dirhook's users, groups and events.

Each write holds its directory (dirhook/directory_lock.py: one writer per directory,
across API replicas and the workers' passes) from the write to the end of its projection
by the sync engine, a one-object incremental pass (the same normalize → diff → roles →
outbox path as LDAP): a full pass of the directory sees every push committed before it
and none half-way. A write that cannot get the directory in time answers 503 with
Retry-After and changes nothing. If a projection fails, the SCIM table stays the truth: the next write of that object, or a
full pass of the directory (`POST /v1/directories/{id}/sync?mode=full` reads this table),
brings the users and groups back in line and emits what receivers missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Union

from scim2_models import (
    Group,
    NotFoundException,
    Path,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimFilter,
    SearchRequest,
    UniquenessException,
    User,
    default_comparison_key,
)
from scim2_models.path import CompareOperator, Comparison
from scim2_server.service import ScimService
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.utils import parametrize
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import ScimResource
from dirhook.directory_lock import DirectoryLocks
from dirhook.providers.base import Changes, SourceEntry
from dirhook.scim.records import group_record, user_record, without_members

log = logging.getLogger(__name__)

USER_NAME = Path[User[Any]]("userName").resolve()
GROUP_NAME = Path[Group]("displayName").resolve()
# Attributes an IdP's lookup compares with `eq` that an index answers (Okta checks
# existence with `userName eq "…"` before every creation).
INDEXED = {"username": "match_key", "displayname": "match_key", "externalid": "external_id", "id": "id"}

Project = Callable[[Changes], Awaitable[None]]


def type_name(resource_type: ResourceType) -> str:
    """The resource type's name ("User", "Group"); scim2-models types it optional."""
    return resource_type.name or ""


def _stamp(moment: datetime) -> str:
    """SCIM's dateTime (xsd:dateTime, UTC with a Z)."""
    return moment.isoformat().replace("+00:00", "Z")


def version_of(body: dict[str, Any]) -> str:
    """A weak ETag from the content: equal content, equal version (RFC 7644 §3.14)."""
    content = {k: v for k, v in body.items() if k != "meta"}
    return 'W/"' + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20] + '"'


def _keys(resource_type: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(match key, unique key): userName is unique per directory, displayName is not."""
    if resource_type == "User":
        key = default_comparison_key(USER_NAME, body["userName"]) if body.get("userName") else None
        return key, key
    name = body.get("displayName")
    return (default_comparison_key(GROUP_NAME, name) if name else None), None


def _indexed_lookup(scim_filter: ScimFilter[Any] | None, resource_type: str) -> tuple[str, str] | None:
    """(column, value) when the filter is one `eq` on an indexed string attribute."""
    if scim_filter is None:
        return None
    node = scim_filter.ast
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq or not isinstance(node.value, str):
        return None
    name = str(node.attr_path).rsplit(":", 1)[-1].lower()
    column = INDEXED.get(name)
    if (
        column is None
        or (name == "username" and resource_type != "User")
        or (name == "displayname" and resource_type != "Group")
    ):
        return None
    if column == "match_key":
        return column, default_comparison_key(USER_NAME if name == "username" else GROUP_NAME, node.value)
    return column, node.value


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
    ):
        self.directory_id = directory_id
        self.sessions = sessions
        self.service = service
        self.project = project
        self.locks = locks
        self.wait_seconds = wait_seconds
        # One write at a time per directory in this process: a PATCH reads, applies and
        # writes back, and its projection must see the writes before it.
        self._turn = asyncio.Lock()

    def operation(self) -> asyncio.Lock:
        return self._turn

    # -- reading ------------------------------------------------------------------------------
    def _resource(self, resource_type: ResourceType, body: dict[str, Any]) -> Resource[Any]:
        return self.service.get_model(resource_type).model_validate(body)

    def _row(self, resource_type: ResourceType, resource_id: str) -> ScimResource:
        with self.sessions() as s:
            row = s.get(ScimResource, (self.directory_id, resource_id))
            if row is None or row.resource_type != resource_type.name:
                raise NotFoundException(detail=f"{resource_type.name} {resource_id} not found")
            s.expunge(row)
            return row

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        row = await asyncio.to_thread(self._row, resource_type, resource_id)
        return self._resource(resource_type, row.body)

    def _candidates(self, names: list[str], scim_filter: ScimFilter[Any] | None) -> list[tuple[str, dict[str, Any]]]:
        q = select(ScimResource.resource_type, ScimResource.body).where(
            ScimResource.directory_id == self.directory_id, ScimResource.resource_type.in_(names)
        )
        lookup = _indexed_lookup(scim_filter, names[0]) if len(names) == 1 else None
        if lookup:
            q = q.where(getattr(ScimResource, lookup[0]) == lookup[1])
        with self.sessions() as s:
            return [tuple(r) for r in s.execute(q.order_by(ScimResource.id))]

    async def search(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *, position: Any = None
    ) -> SearchPage:
        by_name = {type_name(rt): rt for rt in resource_types}
        scim_filter = search_request.filter
        rows = await asyncio.to_thread(self._candidates, list(by_name), scim_filter)
        resources = [self._resource(by_name[name], body) for name, body in rows]
        if scim_filter is not None and not scim_filter.models and resources:
            # A search at the root: the filter is read against each resource's own model.
            models = tuple(dict.fromkeys(type(r) for r in resources))
            scim_filter = parametrize(ScimFilter, Union[models])(str(scim_filter))  # noqa: UP007
        found = [r for r in resources if scim_filter is None or scim_filter.match(r)]
        if search_request.sort_by is not None:

            def order(resource: Resource[Any]) -> tuple[Any, ...]:  # missing values last, then by id
                value = search_request.sort_value(resource)
                return value is None, value if value is not None else "", resource.id

            found.sort(key=order, reverse=search_request.sort_order == SearchRequest.SortOrder.descending)
        start = search_request.start_index_0 or 0
        stop = None if search_request.count is None else start + search_request.count
        return SearchPage(total=len(found), resources=found[start:stop])

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _dump(resource: Resource[Any]) -> dict[str, Any]:
        body = resource.model_dump()
        body.pop("password", None)  # never stored: dirhook syncs identities, not credentials
        body.get("meta", {}).pop("location", None)
        return body

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

    def _store(
        self, resource_type: str, body: dict[str, Any], expected_version: str | None, create: bool
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        match_key, unique_key = _keys(resource_type, body)
        try:
            with self.sessions.begin() as s:
                self._check_unique(s, resource_type, unique_key, body["id"])
                row = s.get(ScimResource, (self.directory_id, body["id"]))
                if create:
                    created = now
                else:
                    if row is None or row.resource_type != resource_type:
                        raise NotFoundException(detail=f"{resource_type} {body['id']} not found")
                    if expected_version is not None and expected_version != row.version:
                        raise PreconditionFailedException(detail=f"the resource is at version {row.version}")
                    created = row.created_at
                body["meta"] = {"resourceType": resource_type, "created": _stamp(created), "lastModified": _stamp(now)}
                version = version_of(body)
                if row is not None and not create and version == row.version:
                    return row.body  # nothing changed: same version, no write (RFC 7644 §3.14 allows it)
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
                            created_at=created,
                            updated_at=now,
                        )
                    )
                else:
                    row.match_key, row.unique_key, row.external_id = match_key, unique_key, body.get("externalId")
                    row.body, row.version, row.updated_at = body, version, now
        except IntegrityError:  # a concurrent write from another process took the userName
            raise UniquenessException(detail="userName is already taken") from None
        return body

    def _entry(self, resource_type: str, body: dict[str, Any]) -> SourceEntry:
        record = user_record(body) if resource_type == "User" else group_record(body)
        return SourceEntry(ref=body["id"], attributes=record)

    async def _project(self, resource_type: str, body: dict[str, Any] | None, deleted: str | None = None) -> None:
        users = [self._entry("User", body)] if body is not None and resource_type == "User" else []
        groups = [self._entry("Group", body)] if body is not None and resource_type == "Group" else []
        await self.project(
            Changes(
                full=False,
                groups=iter(groups),
                users=iter(users),
                announce=False,
                hold_explicit_deletions=False,
                deleted_user_ids={deleted} if deleted and resource_type == "User" else set(),
                deleted_group_ids={deleted} if deleted and resource_type == "Group" else set(),
            )
        )

    def _writing(self) -> AbstractAsyncContextManager[float]:
        return self.locks.hold_async(self.directory_id, self.wait_seconds, "scim")

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        body = self._dump(resource)
        body["id"] = uuid.uuid4().hex
        async with self._writing():
            stored = await asyncio.to_thread(self._store, type_name(resource_type), body, None, True)
            await self._project(type_name(resource_type), stored)
        return self._resource(resource_type, stored)

    async def update(
        self, resource_type: ResourceType, resource: Resource[Any], *, expected_version: str | None = None
    ) -> Resource[Any]:
        body = self._dump(resource)
        async with self._writing():
            stored = await asyncio.to_thread(self._store, type_name(resource_type), body, expected_version, False)
            await self._project(type_name(resource_type), stored)
        return self._resource(resource_type, stored)

    def _remove(self, resource_type: str, resource_id: str, expected_version: str | None) -> None:
        """Deletes the resource; a deleted user also leaves the groups that listed it."""
        with self.sessions.begin() as s:
            row = s.get(ScimResource, (self.directory_id, resource_id))
            if row is None or row.resource_type != resource_type:
                raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
            if expected_version is not None and expected_version != row.version:
                raise PreconditionFailedException(detail=f"the resource is at version {row.version}")
            s.delete(row)
            for group in s.scalars(
                select(ScimResource).where(
                    ScimResource.directory_id == self.directory_id, ScimResource.resource_type == "Group"
                )
            ):
                body = without_members(group.body, resource_id)
                if body is not None:
                    body["meta"] = {**body.get("meta", {}), "lastModified": _stamp(datetime.now(UTC))}
                    body["meta"]["version"] = group.version = version_of(body)
                    group.body = body

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        async with self._writing():
            await asyncio.to_thread(self._remove, type_name(resource_type), resource_id, expected_version)
            # The groups that listed a deleted user are not projected again: the engine's
            # deletion already ends those memberships (group.user_removed, then user.deleted),
            # and the groups' next projection finds them without that member.
            await self._project(type_name(resource_type), None, deleted=resource_id)
