from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from dirhook.api.deps import SessionDep
from dirhook.api.routers.organizations import resolve_organization
from dirhook.api.schemas import AttemptOut, DeliveryOut, EndpointCreated, EndpointIn, EndpointOut, Page
from dirhook.db.schema import Delivery, DeliveryAttempt, Directory, Endpoint
from dirhook.ids import new_id
from dirhook.signing import generate_secret

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])

Limit = Annotated[int, Query(ge=1, le=1000)]
DeliveryStatus = Literal["pending", "succeeded", "retrying", "failed"]


def endpoint_out(e: Endpoint) -> EndpointOut:
    return EndpointOut.model_validate(e, from_attributes=True)


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    e = session.get(Endpoint, endpoint_id)
    if e is None:
        raise HTTPException(404, f"endpoint {endpoint_id} not found")
    return e


@router.post("", response_model=EndpointCreated, status_code=201)
def create_endpoint(body: EndpointIn, session: SessionDep):
    """Subscribes a URL. The response carries the signing secret: it is never shown again."""
    org = resolve_organization(session, body.organization_id)
    for directory_id in body.directory_ids or ():
        d = session.get(Directory, directory_id)
        if d is None or d.organization_id != org.id:
            raise HTTPException(422, f"directory_ids: {directory_id} is not a directory of organization {org.id}")
    e = Endpoint(id=new_id("ep"), organization_id=org.id, url=body.url, description=body.description,
                 event_types=body.event_types, directory_ids=body.directory_ids,
                 retry_schedule=body.retry_schedule, enabled=True, secret=generate_secret())
    session.add(e)
    session.commit()
    return EndpointCreated(**endpoint_out(e).model_dump(), secret=e.secret)


@router.get("", response_model=list[EndpointOut])
def list_endpoints(session: SessionDep, organization_id: str | None = None):
    q = select(Endpoint).order_by(Endpoint.id)
    if organization_id:
        q = q.where(Endpoint.organization_id == organization_id)
    return [endpoint_out(e) for e in session.scalars(q)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
def read_endpoint(endpoint_id: str, session: SessionDep):
    return endpoint_out(get_endpoint(session, endpoint_id))


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, session: SessionDep):
    session.delete(get_endpoint(session, endpoint_id))
    session.commit()
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(endpoint_id: str, session: SessionDep, limit: Limit = 100, after: int | None = None,
                    status: DeliveryStatus | None = None, event_id: str | None = None):
    """The endpoint's deliveries, oldest first, each with its attempts (status, latency, error)."""
    get_endpoint(session, endpoint_id)
    q = select(Delivery).where(Delivery.endpoint_id == endpoint_id).order_by(Delivery.id).limit(limit + 1)
    if after is not None:
        q = q.where(Delivery.id > after)
    if status:
        q = q.where(Delivery.status == status)
    if event_id:
        q = q.where(Delivery.event_id == event_id)
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    attempts: dict[int, list[AttemptOut]] = {}
    if rows:
        for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
                                 .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt)):
            attempts.setdefault(a.delivery_id, []).append(AttemptOut.model_validate(a, from_attributes=True))
    data = [DeliveryOut(id=r.id, endpoint_id=r.endpoint_id, event_id=r.event_id, event_type=r.event_type,
                        directory_id=r.directory_id, status=r.status, attempts=r.attempts,
                        last_status_code=r.last_status_code, last_error=r.last_error,
                        next_attempt_at=r.next_attempt_at, created_at=r.created_at,
                        attempt_log=attempts.get(r.id, [])) for r in rows]
    return Page(data=data, next_cursor=str(rows[-1].id) if rows else (str(after) if after is not None else None),
                has_more=more)
