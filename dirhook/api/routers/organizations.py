from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from dirhook.api.deps import SessionDep
from dirhook.api.schemas import OrganizationIn, OrganizationOut
from dirhook.db.schema import Organization
from dirhook.ids import new_id

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

DEFAULT_ORGANIZATION_ID = "org_default"


def resolve_organization(session: Session, organization_id: str | None) -> Organization:
    """The named organization (404 if unknown), or the default one, created on first use."""
    if organization_id:
        org = session.get(Organization, organization_id)
        if org is None:
            raise HTTPException(404, f"organization {organization_id} not found")
        return org
    org = session.get(Organization, DEFAULT_ORGANIZATION_ID)
    if org is None:
        org = Organization(id=DEFAULT_ORGANIZATION_ID, name="default")
        session.add(org)
        session.flush()
    return org


@router.post("", response_model=OrganizationOut, status_code=201)
def create_organization(body: OrganizationIn, session: SessionDep):
    org = Organization(id=new_id("org"), name=body.name)
    session.add(org)
    session.commit()
    return OrganizationOut.model_validate(org, from_attributes=True)


@router.get("", response_model=list[OrganizationOut])
def list_organizations(session: SessionDep):
    return [OrganizationOut.model_validate(o, from_attributes=True)
            for o in session.scalars(select(Organization).order_by(Organization.created_at))]
