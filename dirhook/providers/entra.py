"""Microsoft Entra ID through Microsoft Graph delta queries (msgraph-sdk + azure-identity).

A round reads `/users/delta()` and `/groups/delta()` (with `members@delta`) page by page
and stores both `@odata.deltaLink`s with the committed state; the next round asks only
for what changed. `410 resyncRequired` (an expired token) turns the round into a full
one: the engine then emits only real differences. Throttling (429/503 with
`Retry-After`) is honoured by msgraph's retry middleware; what still fails is retried by
Temporal. Refused credentials or missing permissions fail the pass at once, clearly,
without retries.

msgraph and azure-identity are imported when an Entra directory is synced, never at
module import: the SDK loads ~1,200 modules (2.5–3 s, ~70 MB), which a worker serving
only LDAP directories must not pay (a test holds this).

Pages are fetched through msgraph's request builders and middleware (URLs, auth, retries,
redirects, OData errors) but read as JSON, not as msgraph's typed models: building a
kiota model per user costs more than everything else dirhook does with it
(bench/entra_delta_sync.py measures both).

Soft-deleted users (`@removed.reason == "changed"`: in the recycle bin, restorable) are
deactivated — `user.updated` with `active: false`, as Entra's own SCIM provisioning
treats them; permanently deleted ones (`"deleted"`) are `user.deleted`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Group, GroupNesting, Membership, User, table_of
from dirhook.normalize import effective_mapping
from dirhook.providers.base import (
    Changes,
    SourceAuthError,
    SourceConfigError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
)
from dirhook.providers.entra_config import EntraConfig
from dirhook.providers.entra_records import GROUP_SELECT, USER_SELECT, group_record, member_changes, user_record
from dirhook.providers.probe import Probe
from dirhook.providers.stored import external_ids


class Resync(Exception):
    """Graph answered 410: the delta token is no longer valid."""


def _odata_code(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "code", "") or "")


T = TypeVar("T")


class EntraSource:
    def __init__(
        self,
        config: EntraConfig,
        client_secret: str | None,
        mapping_overrides: dict[str, Any] | None,
        sessions: sessionmaker[Session],
        directory_id: str,
        ca_bundle: str | None = None,
        allow_private_hosts: bool = False,
    ):
        self.config = config
        self.client_secret = client_secret
        self.mapping = effective_mapping("entra", mapping_overrides)
        self.sessions = sessions
        self.directory_id = directory_id
        self.ca_bundle = ca_bundle
        self.allow_private_hosts = allow_private_hosts
        # Tries of a token request beyond the first (None: azure-identity's own policy, which
        # backs off for about 6 s). A connection test sets 0: a person waits for its answer.
        self.token_retries: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.resynced = False

    # -- the SDK, in a loop of this thread (the pass runs in an activity thread) -----------------
    def connect(self) -> None:
        if not self.client_secret:
            raise SourceConfigError(f"the directory has no client {self.config.credential}")
        from dirhook.source_policy import SourceTargetRefused, check_source_targets

        try:  # where the secret goes, on what its hosts resolve to now
            check_source_targets("entra", self.config.model_dump(), True, self.allow_private_hosts)
        except SourceTargetRefused as exc:
            raise SourceConfigError(f"the directory's Entra host {exc}") from None
        self._loop = asyncio.new_event_loop()
        self._run(self._build())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "connect() first"
        return self._loop.run_until_complete(coro)

    async def _build(self) -> None:
        import httpx
        from azure.identity.aio import ClientSecretCredential
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory

        cfg = self.config
        graph = urlparse(cfg.graph_base_url)
        verify: Any = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
        extra: dict[str, Any] = {"connection_verify": self.ca_bundle} if self.ca_bundle else {}
        if self.token_retries is not None:
            extra["retry_total"] = self.token_retries
        secret = self.client_secret or ""  # connect() refused a directory without one
        self._credential: Any
        if cfg.credential == "certificate":
            from azure.identity.aio import CertificateCredential

            try:
                self._credential = CertificateCredential(
                    cfg.tenant_id,
                    cfg.client_id,
                    certificate_data=secret.encode(),
                    authority=cfg.authority_host,
                    **extra,
                )
            except ValueError as exc:  # not a PEM with an RSA key and its certificate
                raise SourceConfigError(f"the client certificate cannot be used: {exc}") from None
        else:
            self._credential = ClientSecretCredential(
                cfg.tenant_id, cfg.client_id, secret, authority=cfg.authority_host, **extra
            )
        auth = AzureIdentityAuthenticationProvider(
            self._credential, scopes=[f"https://{graph.netloc}/.default"], allowed_hosts=[graph.hostname or ""]
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=verify, timeout=cfg.timeout_seconds, http2=False)
        )
        self._http = http
        self._adapter = GraphRequestAdapter(auth, client=http)
        self._adapter.base_url = cfg.graph_base_url
        self._client = GraphServiceClient(request_adapter=self._adapter)
        self._odata_error = ODataError

    def close(self) -> None:
        if self._loop is None:
            return

        async def shut() -> None:
            # A connect() that failed half-way (a credential the library refused) made only
            # some of them: closing must not hide its error behind an AttributeError.
            credential, http = getattr(self, "_credential", None), getattr(self, "_http", None)
            if credential is not None:
                await credential.close()
            if http is not None:
                await http.aclose()

        try:
            self._run(shut())
        finally:
            self._loop.close()
            self._loop = None

    def probe(self) -> Probe:
        """The credentials work and both permissions are granted: the first page of each
        kind is read (Graph counts only with advanced queries, which delta does not take)."""
        users = self._run(self._page("users", None))
        groups = self._run(self._page("groups", None))
        more = "@odata.nextLink" in users or "@odata.nextLink" in groups
        found = Probe(len(users.get("value", [])), len(groups.get("value", [])), capped=more)
        if more:
            found.notes.append("counted on Graph's first page only")
        return found

    # -- pages ------------------------------------------------------------------------------------
    async def _page(self, kind: str, url: str | None) -> dict[str, Any]:
        from azure.core.exceptions import ClientAuthenticationError
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        builder = (self._client.users if kind == "users" else self._client.groups).delta
        if url:
            info = builder.with_url(url).to_get_request_information()
        else:
            scoped = kind == "groups" and self.config.group_ids
            query: Any = builder.DeltaRequestBuilderGetQueryParameters(
                select=list(USER_SELECT if kind == "users" else GROUP_SELECT),
                expand=["manager($select=id)"] if kind == "users" else None,
                filter=" or ".join(f"id eq '{g}'" for g in self.config.group_ids) if scoped else None,
            )
            info = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        info.headers.try_add("Prefer", f"odata.maxpagesize={self.config.page_size}")
        try:
            raw = await self._adapter.send_primitive_async(info, "bytes", {"XXX": self._odata_error})
        except ClientAuthenticationError as exc:
            raise SourceAuthError(f"Entra refused the app's credentials: {_first_line(exc)}") from None
        except self._odata_error as exc:
            status = getattr(exc, "response_status_code", None)
            code = _odata_code(exc)
            if status == 410 or code in ("resyncRequired", "syncStateNotFound", "syncStateInvalid"):
                raise Resync() from None
            if status in (401, 403):
                raise SourceAuthError(
                    f"Graph refused the request ({status} {code}): the app needs the application "
                    "permissions User.Read.All and GroupMember.Read.All, granted by an admin"
                ) from None
            raise SourceUnavailable(f"Graph answered {status} {code}") from None
        except SourceError:
            raise
        except Exception as exc:  # connection errors, timeouts: Temporal retries the pass
            raise SourceUnavailable(
                f"cannot reach Graph at {self.config.graph_base_url}: {type(exc).__name__}: {exc}"
            ) from None
        page: dict[str, Any] = json.loads(raw)
        return page

    def _pages(self, kind: str, first: dict[str, Any], links: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = first
        while True:
            yield page
            if "@odata.nextLink" in page:
                page = self._run(self._page(kind, page["@odata.nextLink"]))
            else:
                links[kind] = page.get("@odata.deltaLink")
                return

    # -- what is stored, for the parts of a round Graph sends as changes -----------------------------
    def _stored_members(self, group_ids: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self.sessions() as s:
            ids = dict(
                s.execute(
                    select(Group.id, Group.external_id).where(
                        Group.directory_id == self.directory_id, Group.external_id.in_(group_ids)
                    )
                ).all()
            )
            for gid, ref in s.execute(
                select(Membership.group_id, User.source_ref)
                .join(User, User.id == Membership.user_id)
                .where(Membership.group_id.in_(ids))
            ):
                if ref:
                    out.setdefault(ids[gid], set()).add(ref)
            child = table_of(Group).alias("child")
            for gid, ref in s.execute(
                select(GroupNesting.parent_group_id, child.c.source_ref)
                .join(child, child.c.id == GroupNesting.child_group_id)
                .where(GroupNesting.parent_group_id.in_(ids))
            ):
                out.setdefault(ids[gid], set()).add(ref)
        return out

    def _stored_record(self, user_id: str) -> dict[str, list[Any]] | None:
        with self.sessions() as s:
            return s.scalar(
                select(User.source_record).where(User.directory_id == self.directory_id, User.external_id == user_id)
            )

    # -- a round ---------------------------------------------------------------------------------
    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes:
        links_in = cursor or {}
        incremental = not full and bool(links_in.get("users")) and bool(links_in.get("groups"))
        if incremental:
            try:
                first_groups = self._run(self._page("groups", links_in["groups"]))
                first_users = self._run(self._page("users", links_in["users"]))
            except Resync:
                incremental, self.resynced = False, True
        if not incremental:
            first_groups = self._run(self._page("groups", None))
            first_users = self._run(self._page("users", None))
        links: dict[str, Any] = {}
        changes = Changes(full=not incremental, groups=iter(()), users=iter(()), next_cursor=links)
        if self.resynced:
            changes.notes.append(
                "Graph no longer knew the delta token (410 resyncRequired): read everything "
                "again; only real differences were sent"
            )
        groups = self._groups(first_groups, links, changes, incremental)
        changes.groups = iter(groups)
        scope = self._scope(groups) if self.config.group_ids else None
        changes.users = self._users(first_users, links, changes, scope, incremental)
        return changes

    def _scope(self, fetched: list[SourceEntry]) -> set[str]:
        """The users the selected groups hold now: from this round's groups, and what is
        stored for the selected groups this round did not mention."""
        members = {ref for e in fetched for ref in e.attributes.get("members", [])}
        quiet = [g for g in self.config.group_ids if g not in {e.ref for e in fetched}]
        for refs in self._stored_members(quiet).values():
            members |= refs
        return members

    def _stored_user_ids(self) -> set[str]:
        return external_ids(self.sessions, self.directory_id, User)

    async def _user(self, user_id: str) -> dict[str, Any] | None:
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        builder = self._client.users.by_user_id(user_id)
        query = builder.UserItemRequestBuilderGetQueryParameters(
            select=list(USER_SELECT), expand=["manager($select=id)"]
        )
        info = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        try:
            raw = await self._adapter.send_primitive_async(info, "bytes", {"XXX": self._odata_error})
        except self._odata_error as exc:
            if getattr(exc, "response_status_code", None) == 404:
                return None
            raise SourceUnavailable(
                f"Graph answered {getattr(exc, 'response_status_code', None)} {_odata_code(exc)} for user {user_id}"
            ) from None
        user: dict[str, Any] = json.loads(raw)
        return user

    def _groups(
        self, first: dict[str, Any], links: dict[str, Any], changes: Changes, incremental: bool
    ) -> list[SourceEntry]:
        objects = [g for page in self._pages("groups", first, links) for g in page.get("value", [])]
        present = [g for g in objects if "@removed" not in g]
        changes.deleted_group_ids.update(g["id"] for g in objects if "@removed" in g)
        stored = self._stored_members([g["id"] for g in present]) if incremental else {}
        entries = []
        for group in present:
            added, removed = member_changes(group)
            members = (stored.get(group["id"], set()) | set(added)) - set(removed)
            entries.append(SourceEntry(ref=group["id"], attributes=group_record(group, sorted(members))))
        return entries

    def _users(
        self, first: dict[str, Any], links: dict[str, Any], changes: Changes, scope: set[str] | None, incremental: bool
    ) -> Iterator[SourceEntry]:
        stored = self._stored_user_ids() if scope is not None and incremental else set()
        seen: set[str] = set()
        for page in self._pages("users", first, links):
            for user in page.get("value", []):
                seen.add(user["id"])
                removed = user.get("@removed")
                if removed and removed.get("reason") == "changed":  # soft-deleted: deactivate
                    record = self._stored_record(user["id"])
                    if record is not None:
                        yield SourceEntry(ref=user["id"], attributes={**record, "accountEnabled": ["false"]})
                elif (
                    removed
                    or (self.config.only_enabled and user.get("accountEnabled") is False)
                    or (scope is not None and user["id"] not in scope)
                ):
                    changes.deleted_user_ids.add(user["id"])
                else:
                    yield SourceEntry(ref=user["id"], attributes=user_record(user))
        if scope is None or not incremental:
            return
        # Group scope, between rounds: a user who joined a selected group without changing
        # is not in the users delta, so it is read by itself; one who left them all goes.
        for user_id in sorted(scope - stored - seen):
            user = self._run(self._user(user_id))
            if user and not (self.config.only_enabled and user.get("accountEnabled") is False):
                yield SourceEntry(ref=user_id, attributes=user_record(user))
        changes.deleted_user_ids.update(stored - scope)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
