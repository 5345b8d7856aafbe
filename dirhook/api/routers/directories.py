import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from dirhook import temporal as t
from dirhook.api.deps import SessionDep, SettingsDep, TemporalDep, visible
from dirhook.config import Settings
from dirhook.api.routers.organizations import resolve_organization, scoped
from dirhook.api.schemas import (
    DeletionDecision,
    DirectoryCreated,
    DirectoryIn,
    DirectoryOut,
    DirectoryPatch,
    HeldDeletionsOut,
    Page,
    ScheduleOut,
    ScimTokenOut,
    SyncRunOut,
    SyncStarted,
    SyncStatusOut,
)
from dirhook.db.schema import Directory, Group, HeldDeletion, SyncRun, User
from dirhook import sync_control, tokens
from dirhook.ids import new_id
from dirhook.sync_control import DirectoryRef
from dirhook.normalize import MappingError, effective_mapping
from dirhook.providers.entra import EntraConfig
from dirhook.providers.ldap import LdapConfig
from dirhook.payloads import group_payload, user_payload
from workflows.directory_sync import DirectorySyncWorkflow

router = APIRouter(prefix="/v1/directories", tags=["directories"])
log = logging.getLogger(__name__)

Limit = Annotated[int, Query(ge=1, le=1000)]


def directory_out(d: Directory) -> DirectoryOut:
    return DirectoryOut(id=d.id, organization_id=d.organization_id, name=d.name, provider=d.provider,
                        config=d.config, has_bind_password=d.provider == "ldap" and bool(d.secret),
                        has_client_secret=d.provider == "entra" and bool(d.secret),
                        attribute_mapping=d.attribute_mapping,
                        cursor=d.cursor, deletion_threshold_count=d.deletion_threshold_count,
                        deletion_threshold_percent=d.deletion_threshold_percent,
                        sync_interval_seconds=d.sync_interval_seconds,
                        scim_path=f"/scim/v2/{d.id}" if d.provider == "scim" else None, created_at=d.created_at)


SCIM_TOKEN_PREFIX = "dhscim_"


def new_scim_token(d: Directory) -> str:
    token = SCIM_TOKEN_PREFIX + tokens.new_secret()
    d.scim_token_digest = tokens.digest(token)
    return token


def scim_base_url(request: Request, d: Directory) -> str:
    return str(request.base_url).rstrip("/") + f"/scim/v2/{d.id}"


def get_directory(session: Session, directory_id: str) -> Directory:
    d = session.get(Directory, directory_id)
    if d is None or not visible(session, d.organization_id):
        raise HTTPException(404, f"directory {directory_id} not found")
    return d


@router.post("", response_model=DirectoryCreated, status_code=201, response_model_exclude_unset=True)
async def create_directory(body: DirectoryIn, request: Request, session: SessionDep, settings: SettingsDep,
                           client: TemporalDep):
    """Connects a directory. LDAP and Entra: their incremental passes go on a Temporal Schedule
    (and OpenLDAP gets a live listener). SCIM: the answer carries the IdP's tenant URL and
    bearer token (shown once)."""
    flavour = body.ldap.flavour if body.ldap else body.provider
    try:
        effective_mapping(flavour, body.attribute_mapping)
    except MappingError as exc:
        raise HTTPException(422, f"attribute_mapping: {exc}") from None
    org = resolve_organization(session, body.organization_id)
    default_interval = settings.default_sync_interval_seconds if body.provider != "scim" else 0
    interval = default_interval if body.sync_interval_seconds is None else body.sync_interval_seconds
    d = Directory(id=new_id("dir"), organization_id=org.id, name=body.name, provider=body.provider,
                  config=(body.ldap or body.entra).model_dump(mode="json") if (body.ldap or body.entra)
                  else {"flavour": "scim"},
                  secret=body.bind_password or body.client_secret, attribute_mapping=body.attribute_mapping or {},
                  sync_interval_seconds=interval or None)
    token = new_scim_token(d) if body.provider == "scim" else None
    session.add(d)
    session.commit()
    try:
        await sync_control.put_schedule(client, settings, ref(d), d.sync_interval_seconds)
    except Exception:
        session.delete(d)  # nothing half-made: no directory without its schedule
        session.commit()
        raise HTTPException(503, "could not create the directory's schedule in Temporal; nothing was created") from None
    await _listen(client, settings, d)
    created = DirectoryCreated(**directory_out(d).model_dump())
    if token:  # an LDAP directory's answer is the same as GET's
        created.scim_token, created.scim_base_url = token, scim_base_url(request, d)
    return created


@router.post("/{directory_id}/scim-token", response_model=ScimTokenOut)
def rotate_scim_token(directory_id: str, request: Request, session: SessionDep):
    """A new bearer token for the IdP, shown once; the previous one stops working at once."""
    d = get_directory(session, directory_id)
    if d.provider != "scim":
        raise HTTPException(409, f"directory {d.id} is an {d.provider} directory: it has no SCIM token")
    token = new_scim_token(d)
    session.commit()
    return ScimTokenOut(directory_id=d.id, scim_base_url=scim_base_url(request, d), scim_token=token)


@router.get("", response_model=list[DirectoryOut])
def list_directories(session: SessionDep, organization_id: str | None = None):
    q = scoped(session, select(Directory).order_by(Directory.id), Directory.organization_id, organization_id)
    return [directory_out(d) for d in session.scalars(q)]


@router.get("/{directory_id}", response_model=DirectoryOut)
def read_directory(directory_id: str, session: SessionDep):
    return directory_out(get_directory(session, directory_id))


# What each provider's PATCH may carry besides the shared fields, and its settings' model.
PROVIDER_FIELDS = {"ldap": ("ldap", "bind_password"), "entra": ("entra", "client_secret"), "scim": ()}
SETTINGS_MODEL = {"ldap": LdapConfig, "entra": EntraConfig}
# Changing any of these points the directory at other objects: the stored cursor no longer
# describes them, so the next pass is a full one.
CURSOR_SCOPES = {"ldap": ("url", "user_base_dn", "group_base_dn", "user_filter", "group_filter", "flavour"),
                 "entra": ("tenant_id", "graph_base_url")}
# …and these, an LDAP live listener reconnects for.
LISTENER_SCOPE = (*CURSOR_SCOPES["ldap"], "live", "bind_dn", "start_tls")


@router.patch("/{directory_id}", response_model=DirectoryOut)
async def update_directory(directory_id: str, body: DirectoryPatch, session: SessionDep, settings: SettingsDep,
                           client: TemporalDep):
    """Changes settings (a new bind password, another base DN…). Validated whole; nothing changes
    on error. A new attribute mapping re-normalizes the stored users at once (no directory read);
    events go out only for users whose record changed."""
    d = get_directory(session, directory_id)
    relisten = _apply_source_settings(d, body)
    mapping = body.attribute_mapping if body.attribute_mapping is not None else d.attribute_mapping
    try:
        effective_mapping(d.config.get("flavour", d.provider), mapping)
    except MappingError as exc:
        raise HTTPException(422, f"attribute_mapping: {exc}") from None
    remap = (mapping or {}) != (d.attribute_mapping or {})
    d.attribute_mapping = mapping or {}
    if body.name is not None:
        d.name = body.name
    for field in ("deletion_threshold_count", "deletion_threshold_percent"):
        if field in body.model_fields_set:
            setattr(d, field, getattr(body, field))
    reschedule = "sync_interval_seconds" in body.model_fields_set and \
        (body.sync_interval_seconds or None) != d.sync_interval_seconds
    if reschedule:
        d.sync_interval_seconds = body.sync_interval_seconds or None
    session.commit()
    if reschedule or "name" in body.model_fields_set:
        await sync_control.put_schedule(client, settings, ref(d), d.sync_interval_seconds)
    if relisten:
        await _listen(client, settings, d, restart=True)
    if remap:
        await request_sync(client, settings, d, "recompute")
    return directory_out(d)


def _apply_source_settings(d: Directory, body: DirectoryPatch) -> bool:
    """Lays the PATCH's provider settings and secret over the directory's, validated whole
    (422, nothing applied, on error). True when the LDAP listener must start again."""
    given = {name for name in ("ldap", "bind_password", "entra", "client_secret") if getattr(body, name) is not None}
    foreign = given - set(PROVIDER_FIELDS[d.provider])
    if foreign:
        raise HTTPException(422, f"this {d.provider} directory takes no {', '.join(sorted(foreign))}")
    settings_field, secret_field = PROVIDER_FIELDS[d.provider] or (None, None)
    old = d.config
    patch = getattr(body, settings_field) if settings_field else None
    if patch is not None:
        try:
            d.config = SETTINGS_MODEL[d.provider].model_validate({**old, **patch}).model_dump(mode="json")
        except ValidationError as exc:
            raise HTTPException(422, [{"loc": ["body", settings_field, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                      for e in exc.errors(include_url=False, include_input=False)]) from None
        if any(d.config.get(k) != old.get(k) for k in CURSOR_SCOPES[d.provider]):
            d.cursor = None
    secret = getattr(body, secret_field) if secret_field else None
    if secret is not None:
        d.secret = secret
    return d.provider == "ldap" and (secret is not None or any(d.config.get(k) != old.get(k) for k in LISTENER_SCOPE))


@router.delete("/{directory_id}", status_code=204)
async def delete_directory(directory_id: str, session: SessionDep, client: TemporalDep):
    """Deletes the directory, its users, groups and events. A running sync is cancelled first."""
    d = get_directory(session, directory_id)
    await t.terminate_if_running(client, t.sync_workflow_id(d.id), "directory deleted")
    await sync_control.delete_schedule(client, d.id)
    await sync_control.stop_listener(client, d.id)
    session.delete(d)
    session.commit()
    return Response(status_code=204)


async def _listen(client: Client, settings: Settings, d: Directory, restart: bool = False) -> None:
    """LDAP directories with `live` get a listener (syncrepl on OpenLDAP, change notifications
    on Active Directory; it ends by itself when the server offers neither). Best effort: the
    schedule's passes cover a listener that fails."""
    live = d.provider == "ldap" and d.config.get("live", True)
    try:
        if live:
            await sync_control.start_listener(client, settings, ref(d), restart=restart)
        elif restart:
            await sync_control.stop_listener(client, d.id)
    except Exception:
        log.warning("could not start the live listener of %s", d.id, exc_info=True, extra={"directory_id": d.id})


def ref(d: Directory) -> DirectoryRef:
    return DirectoryRef(id=d.id, organization_id=d.organization_id, name=d.name, provider=d.provider)


async def request_sync(client: Client, settings: Settings, d: Directory, mode: str) -> SyncStarted:
    """Signal-with-start the directory's sync workflow: runs now, or right after the running pass."""
    handle = await sync_control.request_sync(client, settings, ref(d), mode)
    return SyncStarted(directory_id=d.id, workflow_id=handle.id, run_id=handle.result_run_id, mode=mode,
                       temporal_ui_url=f"http://127.0.0.1:{settings.temporal_ui_port}/namespaces/"
                                       f"{settings.temporal_namespace}/workflows/{handle.id}")


@router.post("/{directory_id}/sync", response_model=SyncStarted, status_code=202)
async def start_sync(directory_id: str, session: SessionDep, settings: SettingsDep, client: TemporalDep,
                     mode: Literal["incremental", "full", "recompute"] = "incremental"):
    """Starts a pass, or queues one after the pass that is running (requests collapse into one).
    `recompute` reads nothing from the directory: it recomputes users from stored data."""
    d = get_directory(session, directory_id)
    session.close()
    return await request_sync(client, settings, d, mode)


@router.get("/{directory_id}/sync", response_model=SyncStatusOut)
async def sync_status(directory_id: str, session: SessionDep, client: TemporalDep):
    """The directory's current or last pass: workflow state, live progress, last error."""
    d = get_directory(session, directory_id)
    last = session.scalars(select(SyncRun).where(SyncRun.directory_id == d.id).order_by(SyncRun.id.desc()).limit(1)).first()
    # A failed pass may be followed by the requests queued behind it (a recompute): the
    # error shown is the last failed pass's.
    last_failed = session.scalars(select(SyncRun).where(SyncRun.directory_id == d.id, SyncRun.status == "failed")
                                  .order_by(SyncRun.id.desc()).limit(1)).first()
    session.close()
    out = SyncStatusOut(directory_id=d.id, workflow_id=t.sync_workflow_id(d.id), workflow_status=None, state=None,
                        last_run=SyncRunOut.model_validate(last, from_attributes=True) if last else None)
    handle = client.get_workflow_handle(t.sync_workflow_id(d.id))
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return out
        raise
    out.workflow_status = desc.status.name if desc.status else None
    if desc.status == WorkflowExecutionStatus.RUNNING:
        status = await handle.query(DirectorySyncWorkflow.status)
        if status is not None:
            out.state, out.progress, out.error = status.state, status.progress, status.error
            if status.state == "running" and last is not None and last.status == "running":
                out.progress = (last.counts or {}).get("progress") or out.progress  # the live pass
    else:
        out.state = {"COMPLETED": "succeeded", "FAILED": "failed"}.get(out.workflow_status, out.workflow_status.lower())
        if out.state == "failed" and last_failed is not None:
            out.error = last_failed.error
    return out


@router.get("/{directory_id}/schedule", response_model=ScheduleOut)
async def read_schedule(directory_id: str, session: SessionDep, client: TemporalDep):
    """The directory's schedule of incremental passes, as Temporal has it."""
    d = get_directory(session, directory_id)
    session.close()
    out = ScheduleOut(directory_id=d.id, schedule_id=sync_control.schedule_id(d.id),
                      interval_seconds=d.sync_interval_seconds, paused=False, next_runs=[], recent_runs=[])
    if not d.sync_interval_seconds:
        return out
    try:
        desc = await client.get_schedule_handle(out.schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(409, f"directory {d.id} should have a schedule and has none: "
                                     "PATCH its sync_interval_seconds to create it") from None
        raise
    out.paused = desc.schedule.state.paused
    out.next_runs = list(desc.info.next_action_times[:3])
    out.recent_runs = [a.scheduled_at for a in desc.info.recent_actions]
    return out


async def _pause(directory_id: str, session, client: Client, pause: bool) -> ScheduleOut:
    d = get_directory(session, directory_id)
    if not d.sync_interval_seconds:
        raise HTTPException(409, f"directory {d.id} has no schedule (sync_interval_seconds is not set)")
    handle = client.get_schedule_handle(sync_control.schedule_id(d.id))
    await (handle.pause(note="paused through the API") if pause else handle.unpause(note="resumed through the API"))
    return await read_schedule(directory_id, session, client)


@router.post("/{directory_id}/schedule/pause", response_model=ScheduleOut)
async def pause_schedule(directory_id: str, session: SessionDep, client: TemporalDep):
    return await _pause(directory_id, session, client, True)


@router.post("/{directory_id}/schedule/resume", response_model=ScheduleOut)
async def resume_schedule(directory_id: str, session: SessionDep, client: TemporalDep):
    return await _pause(directory_id, session, client, False)


@router.get("/{directory_id}/deletions", response_model=HeldDeletionsOut)
async def held_deletions(directory_id: str, session: SessionDep, client: TemporalDep):
    """Deletions the last pass held back (more than the directory's threshold), awaiting a decision."""
    d = get_directory(session, directory_id)
    held = session.execute(select(HeldDeletion.object_type, HeldDeletion.object_id)
                           .where(HeldDeletion.directory_id == d.id).order_by(HeldDeletion.id)).all()
    users = [i for kind, i in held if kind == "user"]
    groups = [i for kind, i in held if kind == "group"]
    sample = [{"object": "user", "id": u.id, "username": u.state.get("username")}
              for u in session.scalars(select(User).where(User.id.in_(users[:20])))]
    sample += [{"object": "group", "id": g.id, "name": g.state.get("name")}
               for g in session.scalars(select(Group).where(Group.id.in_(groups[:max(0, 20 - len(sample))])))]
    session.close()
    awaiting = False
    try:
        status = await client.get_workflow_handle(t.sync_workflow_id(d.id)).query(DirectorySyncWorkflow.status)
        awaiting = status is not None and status.state == "awaiting_approval"
    except (RPCError, WorkflowQueryFailedError):
        pass  # no running sync: nothing awaits
    return HeldDeletionsOut(directory_id=d.id, awaiting_approval=awaiting, users=len(users), groups=len(groups),
                            sample=sample)


async def _decide(d: Directory, client: Client, approve: bool) -> DeletionDecision:
    handle = client.get_workflow_handle(t.sync_workflow_id(d.id))
    try:
        outcome = await handle.execute_update(DirectorySyncWorkflow.decide_deletions, approve)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, str(exc.cause.message if exc.cause else exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(409, "no deletions are awaiting approval for this directory") from None
        raise
    return DeletionDecision(directory_id=d.id, outcome=outcome)


@router.post("/{directory_id}/deletions/approve", response_model=DeletionDecision)
async def approve_deletions(directory_id: str, session: SessionDep, client: TemporalDep):
    """Delete what the pass held back (receivers get the deletion events now)."""
    d = get_directory(session, directory_id)
    session.close()
    return await _decide(d, client, True)


@router.post("/{directory_id}/deletions/reject", response_model=DeletionDecision)
async def reject_deletions(directory_id: str, session: SessionDep, client: TemporalDep):
    """Keep the objects; the next pass finds them missing again and asks again."""
    d = get_directory(session, directory_id)
    session.close()
    return await _decide(d, client, False)


@router.get("/{directory_id}/sync-runs", response_model=list[SyncRunOut])
def list_sync_runs(directory_id: str, session: SessionDep, limit: Limit = 20):
    get_directory(session, directory_id)
    runs = session.scalars(select(SyncRun).where(SyncRun.directory_id == directory_id)
                           .order_by(SyncRun.id.desc()).limit(limit))
    return [SyncRunOut.model_validate(r, from_attributes=True) for r in runs]


def _objects_page(session: Session, directory: Directory, model: type[User] | type[Group], payload,
                  limit: int, after: str | None) -> Page[dict]:
    q = select(model).where(model.directory_id == directory.id).order_by(model.id).limit(limit + 1)
    if after:
        q = q.where(model.id > after)
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(data=[payload(r, directory) for r in rows], next_cursor=rows[-1].id if rows else after,
                has_more=more)


@router.get("/{directory_id}/users", response_model=Page[dict])
def list_users(directory_id: str, session: SessionDep, limit: Limit = 100, after: str | None = None):
    """Users as receivers see them, by ID; pass `next_cursor` back as `after` for the next page."""
    return _objects_page(session, get_directory(session, directory_id), User, user_payload, limit, after)


@router.get("/{directory_id}/groups", response_model=Page[dict])
def list_groups(directory_id: str, session: SessionDep, limit: Limit = 100, after: str | None = None):
    """Groups as receivers see them, by ID; pass `next_cursor` back as `after` for the next page."""
    return _objects_page(session, get_directory(session, directory_id), Group, group_payload, limit, after)
