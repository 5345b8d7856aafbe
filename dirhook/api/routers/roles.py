"""Roles (per organization) and group→role mappings (per directory).

Every change that can alter a user's roles queues a `recompute` pass of the affected
directories: users are recomputed from stored data at once, without reading the
directory, and only those whose roles changed get `user.updated`.

Routes are plain functions, which FastAPI runs in its thread pool: their database work
stays off the event loop, and the Temporal calls go back to the loop through ``in_loop``.
"""

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from temporalio.client import Client

from dirhook import sync_control
from dirhook.api.deps import SessionDep, SettingsDep, TemporalDep, in_loop
from dirhook.api.schemas import (
    RoleIn,
    RoleMappingIn,
    RoleMappingOut,
    RoleOut,
    RolePatch,
)
from dirhook.config import Settings
from dirhook.contracts import SyncMode
from dirhook.db.schema import Directory, Role, RoleMappingRow
from dirhook.ids import new_id
from dirhook.services.directories import get_directory, ref
from dirhook.services.scope import resolve_organization, scoped, visible

roles_router = APIRouter(prefix="/v1/roles", tags=["roles"])
mappings_router = APIRouter(prefix="/v1/directories/{directory_id}/role-mappings", tags=["roles"])


def get_role(session: Session, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None or not visible(session, role.organization_id):
        raise HTTPException(404, f"role {role_id} not found")
    return role


def recompute(client: Client, settings: Settings, d: Directory) -> None:
    in_loop(sync_control.request_sync, client, settings, ref(d), SyncMode.RECOMPUTE)


def recompute_organization(session: Session, client: Client, settings: Settings, organization_id: str) -> None:
    for d in list(session.scalars(select(Directory).where(Directory.organization_id == organization_id))):
        recompute(client, settings, d)


def _only_default(session: Session, role: Role) -> None:
    if role.is_default:
        session.execute(
            update(Role)
            .where(Role.organization_id == role.organization_id, Role.id != role.id)
            .values(is_default=False)
        )


@roles_router.post("", response_model=RoleOut, status_code=201)
def create_role(body: RoleIn, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    org = resolve_organization(session, body.organization_id)
    if session.scalar(select(Role.id).where(Role.organization_id == org.id, Role.slug == body.slug)):
        raise HTTPException(409, f"organization {org.id} already has a role {body.slug!r}")
    role = Role(id=new_id("role"), organization_id=org.id, **body.model_dump(exclude={"organization_id"}))
    session.add(role)
    session.flush()
    _only_default(session, role)
    session.commit()
    if role.is_default:
        recompute_organization(session, client, settings, org.id)
    return RoleOut.model_validate(role, from_attributes=True)


@roles_router.get("", response_model=list[RoleOut])
def list_roles(session: SessionDep, organization_id: str | None = None):
    q = scoped(session, select(Role).order_by(Role.priority.desc(), Role.slug), Role.organization_id, organization_id)
    return [RoleOut.model_validate(r, from_attributes=True) for r in session.scalars(q)]


@roles_router.get("/{role_id}", response_model=RoleOut)
def read_role(role_id: str, session: SessionDep):
    return RoleOut.model_validate(get_role(session, role_id), from_attributes=True)


@roles_router.patch("/{role_id}", response_model=RoleOut)
def update_role(role_id: str, body: RolePatch, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    role = get_role(session, role_id)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for k, v in changes.items() if k in ("name", "priority", "is_default")):
        raise HTTPException(422, "name, priority and is_default cannot be null")
    affects_users = any(k in changes and changes[k] != getattr(role, k) for k in ("priority", "is_default"))
    for key, value in changes.items():
        setattr(role, key, value)
    _only_default(session, role)
    session.commit()
    if affects_users:
        recompute_organization(session, client, settings, role.organization_id)
    return RoleOut.model_validate(role, from_attributes=True)


@roles_router.delete("/{role_id}", status_code=204)
def delete_role(role_id: str, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Deletes the role and its mappings; users who had it get `user.updated`."""
    role = get_role(session, role_id)
    org = role.organization_id
    session.delete(role)
    session.commit()
    recompute_organization(session, client, settings, org)
    return Response(status_code=204)


def mapping_out(m: RoleMappingRow, slug: str) -> RoleMappingOut:
    return RoleMappingOut(
        id=m.id, directory_id=m.directory_id, role=slug, match=m.match, pattern=m.pattern, created_at=m.created_at
    )


@mappings_router.post("", response_model=RoleMappingOut, status_code=201)
def create_mapping(
    directory_id: str, body: RoleMappingIn, session: SessionDep, settings: SettingsDep, client: TemporalDep
):
    """Members of matching groups (directly or through nesting) get the role."""
    d = get_directory(session, directory_id)
    role = session.scalar(select(Role).where(Role.organization_id == d.organization_id, Role.slug == body.role))
    if role is None:
        # A resource the body names, missing: 404, as for one the path names.
        raise HTTPException(404, f"role: no role {body.role!r} in organization {d.organization_id}")
    if session.scalar(
        select(RoleMappingRow.id).where(
            RoleMappingRow.directory_id == d.id,
            RoleMappingRow.role_id == role.id,
            RoleMappingRow.match == body.match,
            RoleMappingRow.pattern == body.pattern,
        )
    ):
        raise HTTPException(409, "this mapping exists already")
    m = RoleMappingRow(id=new_id("rmap"), directory_id=d.id, role_id=role.id, match=body.match, pattern=body.pattern)
    session.add(m)
    session.commit()
    recompute(client, settings, d)
    return mapping_out(m, role.slug)


@mappings_router.get("", response_model=list[RoleMappingOut])
def list_mappings(directory_id: str, session: SessionDep):
    d = get_directory(session, directory_id)
    rows = session.execute(
        select(RoleMappingRow, Role.slug)
        .join(Role, Role.id == RoleMappingRow.role_id)
        .where(RoleMappingRow.directory_id == d.id)
        .order_by(RoleMappingRow.id)
    )
    return [mapping_out(m, slug) for m, slug in rows]


@mappings_router.delete("/{mapping_id}", status_code=204)
def delete_mapping(directory_id: str, mapping_id: str, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    d = get_directory(session, directory_id)
    m = session.get(RoleMappingRow, mapping_id)
    if m is None or m.directory_id != d.id:
        raise HTTPException(404, f"role mapping {mapping_id} not found in directory {d.id}")
    session.delete(m)
    session.commit()
    recompute(client, settings, d)
    return Response(status_code=204)
