from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy import select

from dirhook import api_keys
from dirhook.api.deps import SessionDep, require_admin
from dirhook.api.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    OrganizationIn,
    OrganizationOut,
)
from dirhook.db.schema import ApiKey, Organization, utcnow
from dirhook.ids import new_id
from dirhook.services.scope import resolve_organization, scoped

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])


@router.post("", response_model=OrganizationOut, status_code=201, dependencies=[Depends(require_admin)])
def create_organization(body: OrganizationIn, session: SessionDep):
    """Admin token only."""
    org = Organization(id=new_id("org"), name=body.name)
    session.add(org)
    session.commit()
    return OrganizationOut.model_validate(org, from_attributes=True)


@router.get("", response_model=list[OrganizationOut])
def list_organizations(session: SessionDep):
    q = scoped(session, select(Organization).order_by(Organization.created_at), Organization.id)
    return [OrganizationOut.model_validate(o, from_attributes=True) for o in session.scalars(q)]


@router.get("/{organization_id}", response_model=OrganizationOut)
def read_organization(organization_id: str, session: SessionDep):
    return OrganizationOut.model_validate(resolve_organization(session, organization_id), from_attributes=True)


def _key_out(key: ApiKey) -> dict[str, Any]:
    return ApiKeyOut.model_validate(key, from_attributes=True).model_dump()


@router.post(
    "/{organization_id}/api-keys", response_model=ApiKeyCreated, status_code=201, dependencies=[Depends(require_admin)]
)
def create_api_key(organization_id: str, body: ApiKeyIn, session: SessionDep):
    """A key that reads and changes this organization's resources only. The response
    carries the key: it is never shown again (only a digest is stored). Only the admin
    token mints keys: a leaked key cannot mint its holder a replacement before it is revoked."""
    org = resolve_organization(session, organization_id)
    key_id, token, digest = api_keys.new_api_key()
    key = ApiKey(id=key_id, organization_id=org.id, name=body.name, secret_digest=digest)
    session.add(key)
    session.commit()
    return ApiKeyCreated(**_key_out(key), key=token)


@router.get("/{organization_id}/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(organization_id: str, session: SessionDep):
    org = resolve_organization(session, organization_id)
    return [
        _key_out(k) for k in session.scalars(select(ApiKey).where(ApiKey.organization_id == org.id).order_by(ApiKey.id))
    ]


@router.delete("/{organization_id}/api-keys/{key_id}", status_code=204)
def revoke_api_key(organization_id: str, key_id: str, session: SessionDep):
    """Revokes at once: the next request with the key gets 401. Revoking twice is a no-op."""
    org = resolve_organization(session, organization_id)
    key = session.get(ApiKey, key_id)
    if key is None or key.organization_id != org.id:
        raise HTTPException(404, f"API key {key_id} not found in organization {org.id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return Response(status_code=204)
