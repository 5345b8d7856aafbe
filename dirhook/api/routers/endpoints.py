"""/v1/endpoints: webhook endpoints, their state and their deliveries.

Routes are plain functions, which FastAPI runs in its thread pool: their database work
stays off the event loop, and the Temporal calls (and the URL guard's DNS lookups) go back
to the loop through ``in_loop``.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from temporalio.client import Client

from dirhook import temporal as t
from dirhook.api.deps import SessionDep, SettingsDep, TemporalDep, in_loop, visible
from dirhook.api.schemas import (
    AttemptOut,
    ClientCertificateOut,
    DeliveryOut,
    DisableIn,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    Page,
    RecoverIn,
    ReplayIn,
    Requeued,
    RotateIn,
    SecretRotated,
    StateChangeOut,
)
from dirhook.config import Settings
from dirhook.db.schema import (
    Delivery,
    DeliveryAttempt,
    Directory,
    Endpoint,
    EndpointStateChange,
    EventRow,
    rowcount,
    utcnow,
)
from dirhook.delivery.rules import OPEN_STATUSES, DeliveryStatus
from dirhook.delivery.store import health_of
from dirhook.endpoint_auth import describe_certificate, header_names
from dirhook.endpoint_state import rotate_secret, set_enabled
from dirhook.ids import new_id
from dirhook.services.endpoint_rules import check_directories, check_scheme, guard_url, write_only
from dirhook.services.scope import resolve_organization, scoped
from dirhook.signing import generate_secret
from dirhook.subscriptions import endpoint_wants

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])
# A row ID, at most 2**53: the largest integer a JSON number holds exactly (2**63 - 1 is not).
DeliveryId = Annotated[int, Path(ge=1, le=2**53, description="the delivery's id")]

Limit = Annotated[int, Query(ge=1, le=1000)]


# Not columns: computed from the row (the write-only fields show only what is safe to show).
_COMPUTED = frozenset({"health", "header_names", "client_certificate", "delivery_counts"})


def endpoint_out(e: Endpoint) -> EndpointOut:
    columns = {name: getattr(e, name) for name in EndpointOut.model_fields if name not in _COMPUTED}
    certificate = describe_certificate(e.client_certificate) if e.client_certificate else None
    return EndpointOut(
        **columns,
        health=health_of(e).state,
        header_names=header_names(e.headers),
        client_certificate=ClientCertificateOut(**vars(certificate)) if certificate else None,
    )


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    e = session.get(Endpoint, endpoint_id)
    if e is None or not visible(session, e.organization_id):
        raise HTTPException(404, f"endpoint {endpoint_id} not found")
    return e


def get_delivery(session: Session, endpoint: Endpoint, delivery_id: int) -> Delivery:
    d = session.get(Delivery, delivery_id)
    if d is None or d.endpoint_id != endpoint.id:
        raise HTTPException(404, f"delivery {delivery_id} of endpoint {endpoint.id} not found")
    return d


async def wake(client: Client, settings: Settings, endpoint_id: str) -> None:
    await t.wake_dispatcher(client, settings, endpoint_id)


@router.post("", response_model=EndpointCreated, status_code=201)
def create_endpoint(body: EndpointIn, session: SessionDep, settings: SettingsDep):
    """Subscribes a URL. The response carries the signing secret: it is never shown again."""
    check_scheme(body.url, settings)
    in_loop(guard_url, body.url, settings)
    org = resolve_organization(session, body.organization_id)
    check_directories(session, org.id, body.directory_ids)
    values = write_only(body.model_dump(exclude={"organization_id"}))
    values["fifo"] = bool(values["fifo"])
    e = Endpoint(id=new_id("ep"), organization_id=org.id, enabled=True, secret=generate_secret(), **values)
    session.add(e)
    session.commit()
    return EndpointCreated(**endpoint_out(e).model_dump(), secret=e.secret)


@router.get("", response_model=list[EndpointOut])
def list_endpoints(session: SessionDep, organization_id: str | None = None):
    q = scoped(session, select(Endpoint).order_by(Endpoint.id), Endpoint.organization_id, organization_id)
    return [endpoint_out(e) for e in session.scalars(q)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
def read_endpoint(endpoint_id: str, session: SessionDep):
    """The endpoint, its health (circuit breaker) and its deliveries by status."""
    e = get_endpoint(session, endpoint_id)
    counts = dict(
        session.execute(
            select(Delivery.status, func.count()).where(Delivery.endpoint_id == e.id).group_by(Delivery.status)
        ).all()
    )
    return endpoint_out(e).model_copy(update={"delivery_counts": counts})


@router.patch("/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(endpoint_id: str, body: EndpointPatch, session: SessionDep, settings: SettingsDep):
    """Changes what the endpoint receives and how; fields left out stay as they are."""
    e = get_endpoint(session, endpoint_id)
    changes = write_only(body.model_dump(exclude_unset=True))
    if "url" in changes:
        check_scheme(changes["url"], settings)
        in_loop(guard_url, changes["url"], settings)
    if "directory_ids" in changes:
        check_directories(session, e.organization_id, changes["directory_ids"])
    if changes.get("fifo") is None:
        changes.pop("fifo", None)
    for key, value in changes.items():
        setattr(e, key, value)
    session.commit()
    return endpoint_out(e)


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, session: SessionDep, client: TemporalDep):
    """Deletes the endpoint and its deliveries; its dispatcher stops."""
    e = get_endpoint(session, endpoint_id)
    in_loop(t.terminate_if_running, client, t.dispatch_workflow_id(e.id), "endpoint deleted")
    session.delete(e)
    session.commit()
    return Response(status_code=204)


# -- state ----------------------------------------------------------------------------------
@router.post("/{endpoint_id}/disable", response_model=EndpointOut)
def disable_endpoint(endpoint_id: str, body: DisableIn, session: SessionDep):
    """Stops delivery; new events are kept as `skipped` deliveries for a later recovery."""
    e = get_endpoint(session, endpoint_id)
    set_enabled(session, e, False, body.reason, "operator")
    session.commit()
    return endpoint_out(e)


@router.post("/{endpoint_id}/enable", response_model=EndpointOut)
def enable_endpoint(endpoint_id: str, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Resumes delivery of pending events (held-back ones need `recover`)."""
    e = get_endpoint(session, endpoint_id)
    set_enabled(session, e, True, "enabled by an operator", "operator")
    session.commit()
    in_loop(wake, client, settings, e.id)
    return endpoint_out(e)


@router.get("/{endpoint_id}/state-changes", response_model=list[StateChangeOut])
def list_state_changes(endpoint_id: str, session: SessionDep):
    get_endpoint(session, endpoint_id)
    rows = session.scalars(
        select(EndpointStateChange)
        .where(EndpointStateChange.endpoint_id == endpoint_id)
        .order_by(EndpointStateChange.id)
    )
    return [StateChangeOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/{endpoint_id}/rotate-secret", response_model=SecretRotated)
def rotate_endpoint_secret(endpoint_id: str, session: SessionDep, settings: SettingsDep, body: RotateIn | None = None):
    """A new signing secret, shown once. The old one keeps signing beside it for the overlap
    (24 h by default), so receivers can switch without losing a request."""
    e = get_endpoint(session, endpoint_id)
    overlap = (
        body.overlap_seconds if body and body.overlap_seconds is not None else settings.secret_rotation_overlap_seconds
    )
    secret, expires = rotate_secret(session, e, timedelta(seconds=overlap))
    session.commit()
    return SecretRotated(endpoint_id=e.id, secret=secret, previous_secret_expires_at=expires)


# -- replay -----------------------------------------------------------------------------------
@router.post("/{endpoint_id}/recover", response_model=Requeued)
def recover(endpoint_id: str, body: RecoverIn, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Requeues every delivery created since `since` that has not succeeded — failed, held
    back (`skipped`), waiting for a retry or held by the circuit breaker — to be sent now."""
    e = get_endpoint(session, endpoint_id)
    if not e.enabled:
        raise HTTPException(409, f"endpoint {e.id} is disabled: enable it first")
    requeue = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, *OPEN_STATUSES)
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.endpoint_id == e.id,
            Delivery.status.in_(requeue),
            Delivery.created_at >= body.since,
            # already due now: nothing to requeue
            ~((Delivery.status == DeliveryStatus.PENDING) & Delivery.next_attempt_at.is_(None)),
        )
        .values(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=utcnow())
    )
    if e.breaker_opened_at is not None:
        e.next_probe_at = utcnow()  # an operator says the receiver is back: probe now, not on the schedule
    session.commit()
    in_loop(wake, client, settings, e.id)
    return Requeued(endpoint_id=e.id, requeued=rowcount(result))


@router.post("/{endpoint_id}/replay", response_model=Requeued)
def replay(endpoint_id: str, body: ReplayIn, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Sends again every event of a directory since a sequence or a time (for a receiver that
    lost its data). Same `webhook-id`s as before, so a deduplicating receiver sees each once."""
    e = get_endpoint(session, endpoint_id)
    d = session.get(Directory, body.directory_id)
    if d is None or d.organization_id != e.organization_id:
        raise HTTPException(404, f"directory {body.directory_id} not found in the endpoint's organization")
    if body.since_sequence is None and body.since is None:
        raise HTTPException(422, "give since_sequence or since")
    q = select(EventRow.pk, EventRow.id, EventRow.type).where(EventRow.directory_id == d.id).order_by(EventRow.pk)
    if body.since_sequence is not None:
        q = q.where(EventRow.sequence >= body.since_sequence)
    if body.since is not None:
        q = q.where(EventRow.created_at >= body.since)
    events = [ev for ev in session.execute(q) if endpoint_wants(e.event_types, e.directory_ids, ev.type, d.id)]
    # IN lists in chunks: one list over every event would pass the databases' limits on
    # bound parameters (PostgreSQL 65,535; SQLite 32,766) for a long history.
    known: set[int] = set()
    for part in _chunks([ev.pk for ev in events]):
        known.update(
            session.scalars(select(Delivery.event_pk).where(Delivery.endpoint_id == e.id, Delivery.event_pk.in_(part)))
        )
    now = utcnow()
    for part in _chunks(sorted(known)):
        session.execute(
            update(Delivery)
            .where(Delivery.endpoint_id == e.id, Delivery.event_pk.in_(part))
            .values(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=now)
        )
    fresh = [
        {
            "endpoint_id": e.id,
            "event_pk": ev.pk,
            "event_id": ev.id,
            "event_type": ev.type,
            "directory_id": d.id,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for ev in events
        if ev.pk not in known
    ]
    if fresh:
        session.execute(insert(Delivery), fresh)
    session.commit()
    in_loop(wake, client, settings, e.id)
    return Requeued(endpoint_id=e.id, requeued=len(events))


def _chunks(items: list[int], size: int = 10_000):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- deliveries ---------------------------------------------------------------------------------
def delivery_out(session: Session, rows: list[Delivery]) -> list[DeliveryOut]:
    attempts: dict[int, list[AttemptOut]] = {}
    if rows:
        for a in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
            .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.id)
        ):
            attempts.setdefault(a.delivery_id, []).append(AttemptOut.model_validate(a, from_attributes=True))
    return [
        DeliveryOut(
            id=r.id,
            endpoint_id=r.endpoint_id,
            event_id=r.event_id,
            event_type=r.event_type,
            directory_id=r.directory_id,
            status=r.status,
            attempts=r.attempts,
            last_status_code=r.last_status_code,
            last_error=r.last_error,
            next_attempt_at=r.next_attempt_at,
            created_at=r.created_at,
            attempt_log=attempts.get(r.id, []),
        )
        for r in rows
    ]


@router.get("/{endpoint_id}/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(
    endpoint_id: str,
    session: SessionDep,
    limit: Limit = 100,
    after: Annotated[int | None, Query(ge=0, le=2**53, description="next_cursor of the previous page")] = None,
    status: DeliveryStatus | None = None,
    event_id: str | None = None,
):
    """The endpoint's deliveries, oldest first, each with its attempts (time, status, latency,
    first 1 KB of the response, error). Filter by `status` or `event_id`."""
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
    return Page(
        data=delivery_out(session, rows),
        next_cursor=str(rows[-1].id) if rows else (str(after) if after is not None else None),
        has_more=more,
    )


@router.post("/{endpoint_id}/deliveries/{delivery_id}/resend", response_model=DeliveryOut)
def resend(endpoint_id: str, delivery_id: DeliveryId, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Sends one delivery again (whatever its status), with the same `webhook-id`."""
    e = get_endpoint(session, endpoint_id)
    d = get_delivery(session, e, delivery_id)
    d.status, d.next_attempt_at, d.updated_at = DeliveryStatus.PENDING, None, utcnow()
    session.commit()
    in_loop(wake, client, settings, e.id)
    return delivery_out(session, [d])[0]


@router.post("/{endpoint_id}/deliveries/{delivery_id}/skip", response_model=DeliveryOut)
def skip(endpoint_id: str, delivery_id: DeliveryId, session: SessionDep, settings: SettingsDep, client: TemporalDep):
    """Gives up on one delivery (it stays recoverable): in FIFO mode, unblocks the events after it."""
    e = get_endpoint(session, endpoint_id)
    d = get_delivery(session, e, delivery_id)
    if d.status == DeliveryStatus.SUCCEEDED:
        raise HTTPException(409, f"delivery {d.id} already succeeded")
    d.status, d.next_attempt_at, d.last_error, d.updated_at = (
        DeliveryStatus.SKIPPED,
        None,
        "skipped by an operator",
        utcnow(),
    )
    session.commit()
    in_loop(wake, client, settings, e.id)
    return delivery_out(session, [d])[0]
