"""/v1/directories: thin over dirhook.services.directories (the rules and the writes live there)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from dirhook.api.deps import ScopeDep, SettingsDep
from dirhook.api.schemas import (
    ConnectionTestOut,
    DeletionDecision,
    DirectoryCreated,
    DirectoryIn,
    DirectoryOut,
    DirectoryPatch,
    HeldDeletionsOut,
    ObjectPage,
    Page,
    ScheduleOut,
    ScimTokenOut,
    SyncCancelled,
    SyncRunOut,
    SyncStarted,
    SyncStatusOut,
)
from dirhook.contracts import SyncMode
from dirhook.db.schema import Directory, Group, User
from dirhook.services.directories import DirectoryService, directory_out

router = APIRouter(prefix="/v1/directories", tags=["directories"])

Limit = Annotated[int, Query(ge=1, le=1000)]


def directory_service(request: Request, scope: ScopeDep, settings: SettingsDep) -> DirectoryService:
    return DirectoryService(scope, settings, request.app.state.temporal.get)


Service = Annotated[DirectoryService, Depends(directory_service)]


def scim_base_url(request: Request, d: Directory) -> str:
    return str(request.base_url).rstrip("/") + f"/scim/v2/{d.id}"


@router.post("", response_model=DirectoryCreated, status_code=201, response_model_exclude_unset=True)
async def create_directory(
    body: DirectoryIn,
    request: Request,
    service: Service,
    test: bool = Query(
        False, description="connect to the source first (bind, bases, counts); 409 with its error if it refuses"
    ),
) -> DirectoryCreated:
    """Connects a directory. LDAP and Entra: their incremental passes go on a Temporal Schedule
    (and OpenLDAP gets a live listener). SCIM: the answer carries the IdP's tenant URL and
    bearer token (shown once)."""
    d, token, tested = await service.create(body, test=test)
    created = DirectoryCreated(**directory_out(d).model_dump())
    if tested is not None:
        created.connection_test = tested
    if token:  # an LDAP directory's answer is the same as GET's
        created.scim_token, created.scim_base_url = token, scim_base_url(request, d)
    return created


@router.post("/{directory_id}/scim-token", response_model=ScimTokenOut)
async def rotate_scim_token(directory_id: str, request: Request, service: Service) -> ScimTokenOut:
    """A new bearer token for the IdP, shown once; the previous one stops working at once."""
    d, token = await service.rotate_scim_token(directory_id)
    return ScimTokenOut(directory_id=d.id, scim_base_url=scim_base_url(request, d), scim_token=token)


@router.get("", response_model=list[DirectoryOut])
async def list_directories(service: Service, organization_id: str | None = None) -> list[DirectoryOut]:
    return [directory_out(d) for d in await service.find(organization_id)]


@router.get("/{directory_id}", response_model=DirectoryOut)
async def read_directory(directory_id: str, service: Service) -> DirectoryOut:
    return directory_out(await service.get(directory_id))


@router.patch("/{directory_id}", response_model=DirectoryOut)
async def update_directory(directory_id: str, body: DirectoryPatch, service: Service) -> DirectoryOut:
    """Changes settings (a new bind password, another base DN…). Validated whole; nothing changes
    on error. A new attribute mapping re-normalizes the stored users at once (no directory read);
    events go out only for users whose record changed."""
    return directory_out(await service.update(directory_id, body))


@router.delete("/{directory_id}", status_code=204)
async def delete_directory(directory_id: str, service: Service) -> Response:
    """Deletes the directory, its users, groups and events. A running sync is cancelled first."""
    await service.delete(directory_id)
    return Response(status_code=204)


@router.post("/{directory_id}/test", response_model=ConnectionTestOut)
async def test_connection(directory_id: str, service: Service) -> ConnectionTestOut:
    """Connects to the directory's source as a pass would (bind, bases, how many users and
    groups would be read) and says what it found or why the source refused; changes nothing."""
    return await service.test_source(directory_id)


@router.post("/{directory_id}/sync", response_model=SyncStarted, status_code=202)
async def start_sync(
    directory_id: str, service: Service, mode: Literal["incremental", "full", "recompute"] = "incremental"
) -> SyncStarted:
    """Starts a pass, or queues one after the pass that is running (requests collapse into one).
    `recompute` reads nothing from the directory: it recomputes users from stored data."""
    return await service.request_sync(directory_id, SyncMode(mode))


@router.post("/{directory_id}/sync/cancel", response_model=SyncCancelled, status_code=202)
async def cancel_sync(directory_id: str, service: Service) -> SyncCancelled:
    """Stops the running pass cleanly (what it committed stays; a full pass's deletions, made
    at its end, are not); 409 when none runs. The workflow closes as CANCELED."""
    return await service.cancel_sync(directory_id)


@router.get("/{directory_id}/sync", response_model=SyncStatusOut)
async def sync_status(directory_id: str, service: Service) -> SyncStatusOut:
    """The directory's current or last pass: workflow state, live progress, last error."""
    return await service.sync_status(directory_id)


@router.get("/{directory_id}/schedule", response_model=ScheduleOut)
async def read_schedule(directory_id: str, service: Service) -> ScheduleOut:
    """The directory's schedule of incremental passes, as Temporal has it."""
    return await service.schedule(directory_id)


@router.post("/{directory_id}/schedule/pause", response_model=ScheduleOut)
async def pause_schedule(directory_id: str, service: Service) -> ScheduleOut:
    return await service.pause_schedule(directory_id, True)


@router.post("/{directory_id}/schedule/resume", response_model=ScheduleOut)
async def resume_schedule(directory_id: str, service: Service) -> ScheduleOut:
    return await service.pause_schedule(directory_id, False)


@router.get("/{directory_id}/deletions", response_model=HeldDeletionsOut)
async def held_deletions(directory_id: str, service: Service) -> HeldDeletionsOut:
    """Deletions the last pass held back (more than the directory's threshold), awaiting a decision."""
    return await service.held_deletions(directory_id)


@router.post("/{directory_id}/deletions/approve", response_model=DeletionDecision)
async def approve_deletions(directory_id: str, service: Service) -> DeletionDecision:
    """Delete what the pass held back (receivers get the deletion events now)."""
    return await service.decide_deletions(directory_id, True)


@router.post("/{directory_id}/deletions/reject", response_model=DeletionDecision)
async def reject_deletions(directory_id: str, service: Service) -> DeletionDecision:
    """Keep the objects; the next pass finds them missing again and asks again."""
    return await service.decide_deletions(directory_id, False)


@router.get("/{directory_id}/sync-runs", response_model=list[SyncRunOut])
async def list_sync_runs(directory_id: str, service: Service, limit: Limit = 20) -> list[SyncRunOut]:
    return await service.sync_runs(directory_id, limit)


@router.get("/{directory_id}/users", response_model=ObjectPage)
async def list_users(
    directory_id: str, service: Service, limit: Limit = 100, after: str | None = None
) -> Page[dict[str, Any]]:
    """Users as receivers see them, by ID; pass `next_cursor` back as `after` for the next page."""
    return await service.objects(directory_id, User, limit, after)


@router.get("/{directory_id}/groups", response_model=ObjectPage)
async def list_groups(
    directory_id: str, service: Service, limit: Limit = 100, after: str | None = None
) -> Page[dict[str, Any]]:
    """Groups as receivers see them, by ID; pass `next_cursor` back as `after` for the next page."""
    return await service.objects(directory_id, Group, limit, after)
