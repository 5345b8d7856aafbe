"""Starting sync passes and managing their schedules: shared by the API and the scheduled
trigger's activity.

Workflows are started by their run method with their typed input
(``start_workflow(DirectorySyncWorkflow.run, SyncRequest(...))``), imported inside each
function: the workflow modules import the activities, which import this module, so a
module-level import here would be a cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from dirhook import temporal as t
from dirhook.config import Settings
from dirhook.contracts import DirectoryInput, SyncMode, SyncRequest, SyncStatus


@dataclass
class DirectoryRef:
    """What starting a pass needs to know of a directory (never its secrets)."""

    id: str
    organization_id: str
    name: str
    provider: str


async def request_sync(
    client: Client, settings: Settings, d: DirectoryRef, mode: SyncMode
) -> WorkflowHandle[Any, SyncStatus]:
    """Signal-with-start the directory's sync workflow: runs now, or right after the running pass."""
    from workflows.directory_sync import DirectorySyncWorkflow

    return await client.start_workflow(
        DirectorySyncWorkflow.run,
        SyncRequest(
            d.id,
            mode=None,
            delivery_task_queue=settings.delivery_task_queue,
            heartbeat_timeout_seconds=settings.sync_heartbeat_timeout_seconds,
            deprovision_quiet_seconds=settings.scim_deprovision_quiet_seconds,
            deprovision_max_wait_seconds=settings.scim_deprovision_max_wait_seconds,
        ),
        id=t.sync_workflow_id(d.id),
        task_queue=settings.sync_task_queue,
        # start_signal takes a name only (the SDK has no typed form for signal-with-start).
        start_signal=DirectorySyncWorkflow.request_sync.__name__,
        start_signal_args=[mode],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(t.DIRECTORY_ID, d.id),
                SearchAttributePair(t.ORGANIZATION_ID, d.organization_id),
                SearchAttributePair(t.SYNC_MODE, mode),
                SearchAttributePair(t.PROVIDER, d.provider),
            ]
        ),
        static_summary=f"Sync directory {d.name} ({d.provider})",
        static_details=f"directory `{d.id}` of organization `{d.organization_id}`",
    )


async def start_listener(client: Client, settings: Settings, d: DirectoryRef, restart: bool = False) -> None:
    """The directory's live LDAP listener (`ldaplisten/<dir>`): started once; `restart`
    replaces a running one (its base DNs or filters changed)."""
    from temporalio.common import WorkflowIDConflictPolicy

    from workflows.ldap_listener import LdapListenerWorkflow

    if restart:
        await stop_listener(client, d.id)
    await client.start_workflow(
        LdapListenerWorkflow.run,
        DirectoryInput(d.id),
        id=t.listener_workflow_id(d.id),
        task_queue=settings.listen_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(t.DIRECTORY_ID, d.id),
                SearchAttributePair(t.ORGANIZATION_ID, d.organization_id),
                SearchAttributePair(t.PROVIDER, d.provider),
            ]
        ),
        static_summary=f"Listen to directory {d.name} for changes",
        static_details=f"directory `{d.id}`: OpenLDAP refreshAndPersist; each change starts an incremental pass",
    )


async def stop_listener(client: Client, directory_id: str) -> None:
    await t.terminate_if_running(client, t.listener_workflow_id(directory_id), "directory changed")


def schedule_id(directory_id: str) -> str:
    return f"dirsync-schedule/{directory_id}"


def _schedule(settings: Settings, d: DirectoryRef, interval_seconds: int, paused: bool) -> Schedule:
    from workflows.scheduled_sync import ScheduledSyncWorkflow

    return Schedule(
        # The action only signals dirsync/<directory>, so scheduled passes queue behind
        # running ones like any other request: the schedule never overlaps a pass.
        action=ScheduleActionStartWorkflow(
            ScheduledSyncWorkflow.run,
            DirectoryInput(d.id),
            id=f"dirsync-trigger/{d.id}",
            task_queue=settings.sync_task_queue,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(t.DIRECTORY_ID, d.id)]),
            static_summary=f"Scheduled sync of directory {d.name}",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=paused, note=f"incremental sync of {d.name} every {interval_seconds}s"),
    )


async def put_schedule(client: Client, settings: Settings, d: DirectoryRef, interval_seconds: int | None) -> None:
    """Create, change or (interval None or 0) delete the directory's schedule."""
    handle = client.get_schedule_handle(schedule_id(d.id))
    if not interval_seconds:
        await delete_schedule(client, d.id)
        return
    try:
        await client.create_schedule(schedule_id(d.id), _schedule(settings, d, interval_seconds, False))
    except ScheduleAlreadyRunningError:  # change the interval, keep it paused or not

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            paused = current.description.schedule.state.paused
            return ScheduleUpdate(schedule=_schedule(settings, d, interval_seconds, paused))

        await handle.update(update)


async def delete_schedule(client: Client, directory_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(directory_id)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
