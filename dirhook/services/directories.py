"""Directory operations: creating, changing and deleting directories with their Temporal
schedules and listeners, starting passes, and reading their state.

Database work runs in a worker thread (``Scope.run``); Temporal calls are awaited on the
loop between them. A step that fails after the database changed undoes what it can
(``create``) or says what was kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from dirhook import sync_control
from dirhook import temporal as t
from dirhook.api.schemas import (
    ConnectionTestOut,
    DeletionDecision,
    DirectoryIn,
    DirectoryPatch,
    HeldDeletionsOut,
    Page,
    ScheduleOut,
    SourceHealthOut,
    SyncCancelled,
    SyncRunOut,
    SyncStarted,
    SyncStatusOut,
)
from dirhook.config import Settings
from dirhook.contracts import RunStatus, SyncMode, SyncState
from dirhook.db.schema import Directory, Group, SyncRun, User
from dirhook.payloads import group_payload, user_payload
from dirhook.services.directory_rules import (
    apply_source_settings,
    check_mapping,
    check_source_targets,
    directory_out,
    get_directory,
    new_directory,
    new_scim_token,
    ref,
    target_hosts,
)
from dirhook.services.errors import Conflict, Unavailable
from dirhook.services.google_notifications import stop_channels
from dirhook.services.held_deletions import held_listing
from dirhook.services.scope import Scope, resolve_organization, scoped
from dirhook.services.source_health import source_health_of
from dirhook.services.source_probe import probe, require_working_source
from workflows.directory_sync import DirectorySyncWorkflow

log = logging.getLogger(__name__)


@dataclass
class Updated:
    directory: Directory
    reschedule: bool
    relisten: bool
    remap: bool


class DirectoryService:
    def __init__(self, scope: Scope, settings: Settings, temporal: Callable[[], Any]):
        self.scope = scope
        self.settings = settings
        # Awaited only by operations that need Temporal: reads answer while it is down.
        self._temporal = temporal

    async def client(self) -> Client:
        try:
            client: Client = await self._temporal()
        except Exception:
            raise Unavailable(f"Temporal is unreachable at {self.settings.temporal_address}") from None
        return client

    async def get(self, directory_id: str) -> Directory:
        return await self.scope.run(lambda s: get_directory(s, directory_id))

    async def find(self, organization_id: str | None) -> list[Directory]:
        def load(s: Session) -> list[Directory]:
            q = scoped(s, select(Directory).order_by(Directory.id), Directory.organization_id, organization_id)
            return list(s.scalars(q))

        return await self.scope.run(load)

    # -- writes ---------------------------------------------------------------------------------
    async def create(
        self, body: DirectoryIn, test: bool = False
    ) -> tuple[Directory, str | None, ConnectionTestOut | None]:
        """The new directory and, for SCIM, its bearer token (shown once). LDAP and Entra get
        their schedule (and OpenLDAP a live listener); without its schedule nothing is made.
        With ``test``, the source is connected to first, and a refusal creates nothing."""
        check_mapping(body.ldap.flavour if body.ldap else body.provider, body.attribute_mapping)
        client = await self.client()
        d = new_directory(body, self.settings)
        tested = None
        if d.provider != "scim":  # resolves names: in a thread, off the event loop
            await asyncio.to_thread(check_source_targets, d.provider, d.config, self.settings)
            if test:
                tested = await require_working_source(d, self.settings, self.scope.sessions)

        def insert(s: Session) -> tuple[Directory, str | None]:
            # Here, in the insert's transaction: the default organization is made on first use.
            d.organization_id = resolve_organization(s, body.organization_id).id
            token = new_scim_token(d) if body.provider == "scim" else None
            s.add(d)
            s.commit()
            return d, token

        d, token = await self.scope.run(insert)
        try:
            await sync_control.put_schedule(client, self.settings, ref(d), d.sync_interval_seconds)
        except Exception:
            await self.scope.run(lambda s: _delete_row(s, d.id))  # nothing half-made
            raise Unavailable("could not create the directory's schedule in Temporal; nothing was created") from None
        await self._listen(client, d)
        return d, token, tested

    async def rotate_scim_token(self, directory_id: str) -> tuple[Directory, str]:
        def rotate(s: Session) -> tuple[Directory, str]:
            d = get_directory(s, directory_id)
            if d.provider != "scim":
                raise Conflict(f"directory {d.id} is an {d.provider} directory: it has no SCIM token")
            token = new_scim_token(d)
            s.commit()
            return d, token

        return await self.scope.run(rotate)

    async def update(self, directory_id: str, body: DirectoryPatch) -> Directory:
        """Validated whole; nothing changes on error. A new attribute mapping re-normalizes the
        stored users at once (a recompute pass: no directory read)."""
        client = await self.client()

        def change(s: Session) -> Updated:
            d = get_directory(s, directory_id)
            hosts = target_hosts(d.config)
            relisten = apply_source_settings(d, body)
            if target_hosts(d.config) != hosts:
                check_source_targets(d.provider, d.config, self.settings)
            mapping = body.attribute_mapping if body.attribute_mapping is not None else d.attribute_mapping
            check_mapping(d.config.get("flavour", d.provider), mapping)
            remap = (mapping or {}) != (d.attribute_mapping or {})
            d.attribute_mapping = mapping or {}
            if body.name is not None:
                d.name = body.name
            for name in ("deletion_threshold_count", "deletion_threshold_percent"):
                if name in body.model_fields_set:
                    setattr(d, name, getattr(body, name))
            reschedule = (
                "sync_interval_seconds" in body.model_fields_set
                and (body.sync_interval_seconds or None) != d.sync_interval_seconds
            )
            if reschedule:
                d.sync_interval_seconds = body.sync_interval_seconds or None
            s.commit()
            return Updated(d, reschedule or "name" in body.model_fields_set, relisten, remap)

        done = await self.scope.run(change)
        d = done.directory
        if done.reschedule:
            await sync_control.put_schedule(client, self.settings, ref(d), d.sync_interval_seconds)
        if done.relisten:
            await self._listen(client, d, restart=True)
        if done.remap:
            await self._request_sync(client, d, SyncMode.RECOMPUTE)
        return d

    async def delete(self, directory_id: str) -> None:
        """The directory, its users, groups and events; a running pass is stopped first."""
        d = await self.get(directory_id)
        client = await self.client()
        await t.terminate_if_running(client, t.sync_workflow_id(d.id), "directory deleted")
        await sync_control.delete_schedule(client, d.id)
        await sync_control.stop_listener(client, d.id)
        if d.provider == "google":  # Google would go on notifying for up to google_channel_seconds
            await asyncio.to_thread(stop_channels, d, self.settings, self.scope.sessions)
        await self.scope.run(lambda s: _delete_row(s, d.id))

    async def _listen(self, client: Client, d: Directory, restart: bool = False) -> None:
        """LDAP directories with `live` get a listener (syncrepl on OpenLDAP, change
        notifications on Active Directory; it ends by itself when the server offers neither).
        Best effort: the schedule's passes cover a listener that fails."""
        live = d.provider == "ldap" and d.config.get("live", True)
        try:
            if live:
                await sync_control.start_listener(client, self.settings, ref(d), restart=restart)
            elif restart:
                await sync_control.stop_listener(client, d.id)
        except Exception:
            log.warning("could not start the live listener of %s", d.id, exc_info=True, extra={"directory_id": d.id})

    async def test_source(self, directory_id: str) -> ConnectionTestOut:
        """Connects to the directory's source as a pass would; changes nothing."""
        d = await self.get(directory_id)
        return await asyncio.to_thread(probe, d, self.settings, self.scope.sessions)

    # -- passes ---------------------------------------------------------------------------------
    async def request_sync(self, directory_id: str, mode: SyncMode) -> SyncStarted:
        d = await self.get(directory_id)
        return await self._request_sync(await self.client(), d, mode)

    async def _request_sync(self, client: Client, d: Directory, mode: SyncMode) -> SyncStarted:
        handle = await sync_control.request_sync(client, self.settings, ref(d), mode)
        return SyncStarted(
            directory_id=d.id,
            workflow_id=handle.id,
            run_id=handle.result_run_id,
            mode=mode,
            temporal_ui_url=t.ui_link(self.settings, handle.id, handle.result_run_id),
        )

    async def cancel_sync(self, directory_id: str) -> SyncCancelled:
        """Asks the running sync workflow to stop: it closes CANCELED once its pass has stopped
        (at its next heartbeat); requests queued behind it are dropped, the schedule goes on."""
        d = await self.get(directory_id)
        handle = (await self.client()).get_workflow_handle(t.sync_workflow_id(d.id))
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict(f"no pass of {d.id} is running: it has never synced") from None
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise Conflict(
                f"no pass of {d.id} is running (its last sync is {desc.status.name if desc.status else '?'})"
            )
        await handle.cancel()
        return SyncCancelled(
            directory_id=d.id,
            workflow_id=desc.id,
            run_id=desc.run_id,
            temporal_ui_url=t.ui_link(self.settings, desc.id, desc.run_id),
        )

    async def sync_status(self, directory_id: str) -> SyncStatusOut:
        """The current or last pass: workflow state, live progress, last error."""

        def load(s: Session) -> tuple[Directory, SyncRun | None, SyncRun | None, SourceHealthOut]:
            d = get_directory(s, directory_id)
            runs = select(SyncRun).where(SyncRun.directory_id == d.id).order_by(SyncRun.id.desc()).limit(1)
            last = s.scalars(runs).first()
            # A failed pass may be followed by the requests queued behind it (a recompute):
            # the error shown is the last failed pass's.
            last_failed = s.scalars(runs.where(SyncRun.status == RunStatus.FAILED)).first()
            return d, last, last_failed, source_health_of(s, d.id)

        # Temporal first, the database second: a pass records its run before its workflow
        # closes, so a closed workflow is never shown with the run row it had not yet finished.
        handle = (await self.client()).get_workflow_handle(t.sync_workflow_id(directory_id))
        try:
            desc: WorkflowExecutionDescription | None = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            desc = None
        d, last, last_failed, source = await self.scope.run(load)
        out = SyncStatusOut(
            directory_id=d.id,
            workflow_id=t.sync_workflow_id(d.id),
            workflow_status=None,
            state=None,
            last_run=SyncRunOut.model_validate(last, from_attributes=True) if last else None,
            source=source,
        )
        if desc is None:
            return out
        out.temporal_ui_url = t.ui_link(self.settings, desc.id, desc.run_id)
        out.workflow_status = desc.status.name if desc.status else None
        if desc.status == WorkflowExecutionStatus.RUNNING:
            status = await handle.query(DirectorySyncWorkflow.status)
            if status is not None:
                out.state, out.progress, out.error = status.state, status.progress, status.error
                if status.state == SyncState.RUNNING and last is not None and last.status == RunStatus.RUNNING:
                    out.progress = (last.counts or {}).get("progress") or out.progress  # the live pass
        elif out.workflow_status is not None:
            out.state = {
                "COMPLETED": SyncState.SUCCEEDED,
                "FAILED": SyncState.FAILED,
                "CANCELED": SyncState.CANCELLED,
            }.get(out.workflow_status, out.workflow_status.lower())
            if out.state == SyncState.FAILED and last_failed is not None:
                out.error = last_failed.error
        return out

    async def sync_runs(self, directory_id: str, limit: int) -> list[SyncRunOut]:
        def load(s: Session) -> list[SyncRunOut]:
            get_directory(s, directory_id)
            runs = s.scalars(
                select(SyncRun).where(SyncRun.directory_id == directory_id).order_by(SyncRun.id.desc()).limit(limit)
            )
            return [SyncRunOut.model_validate(r, from_attributes=True) for r in runs]

        return await self.scope.run(load)

    # -- schedule -------------------------------------------------------------------------------
    async def schedule(self, directory_id: str) -> ScheduleOut:
        """The directory's schedule of incremental passes, as Temporal has it."""
        d = await self.get(directory_id)
        out = ScheduleOut(
            directory_id=d.id,
            schedule_id=sync_control.schedule_id(d.id),
            interval_seconds=d.sync_interval_seconds,
            paused=False,
            next_runs=[],
            recent_runs=[],
        )
        if not d.sync_interval_seconds:
            return out
        try:
            desc = await (await self.client()).get_schedule_handle(out.schedule_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict(
                    f"directory {d.id} should have a schedule and has none: "
                    "PATCH its sync_interval_seconds to create it"
                ) from None
            raise
        out.paused = desc.schedule.state.paused
        out.next_runs = list(desc.info.next_action_times[:3])
        out.recent_runs = [a.scheduled_at for a in desc.info.recent_actions]
        return out

    async def pause_schedule(self, directory_id: str, pause: bool) -> ScheduleOut:
        d = await self.get(directory_id)
        if not d.sync_interval_seconds:
            raise Conflict(f"directory {d.id} has no schedule (sync_interval_seconds is not set)")
        handle = (await self.client()).get_schedule_handle(sync_control.schedule_id(d.id))
        await (handle.pause(note="paused through the API") if pause else handle.unpause(note="resumed through the API"))
        return await self.schedule(directory_id)

    # -- deletion protection ----------------------------------------------------------------------
    async def held_deletions(self, directory_id: str) -> HeldDeletionsOut:
        """Deletions the last pass held back (more than the directory's threshold), awaiting a decision."""

        out = await self.scope.run(lambda s: held_listing(get_directory(s, directory_id), s))
        try:
            handle = (await self.client()).get_workflow_handle(t.sync_workflow_id(out.directory_id))
            status = await handle.query(DirectorySyncWorkflow.status)
            out.awaiting_approval = status is not None and status.state == SyncState.AWAITING_APPROVAL
        except (RPCError, WorkflowQueryFailedError, Unavailable):
            pass  # no running sync: nothing awaits
        return out

    async def decide_deletions(self, directory_id: str, approve: bool) -> DeletionDecision:
        """Approve (delete, with their events) or reject (keep) what the pass held back."""
        d = await self.get(directory_id)
        handle = (await self.client()).get_workflow_handle(t.sync_workflow_id(d.id))
        try:
            outcome = await handle.execute_update(DirectorySyncWorkflow.decide_deletions, approve)
        except WorkflowUpdateFailedError as exc:
            raise Conflict(str(getattr(exc.cause, "message", None) or exc.cause or exc)) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("no deletions are awaiting approval for this directory") from None
            raise
        return DeletionDecision(directory_id=d.id, outcome=outcome)

    # -- objects --------------------------------------------------------------------------------
    async def objects(
        self, directory_id: str, kind: type[User] | type[Group], limit: int, after: str | None
    ) -> Page[dict[str, Any]]:
        """Users or groups as receivers see them, by id, a page at a time."""
        payload = user_payload if kind is User else group_payload

        def load(s: Session) -> Page[dict[str, Any]]:
            d = get_directory(s, directory_id)
            q = select(kind).where(kind.directory_id == d.id).order_by(kind.id).limit(limit + 1)
            if after:
                q = q.where(kind.id > after)
            rows: list[User | Group] = list(s.scalars(q))
            more = len(rows) > limit
            rows = rows[:limit]
            return Page(data=[payload(r, d) for r in rows], next_cursor=rows[-1].id if rows else after, has_more=more)

        return await self.scope.run(load)


def _delete_row(s: Session, directory_id: str) -> None:
    d = s.get(Directory, directory_id)
    if d is not None:
        s.delete(d)
        s.commit()


# Re-exported: routers import these with the service.
__all__ = ["DirectoryService", "directory_out", "get_directory", "ref"]
