"""Delivery activities: batches on the happy path, single attempts for retries."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes, SearchAttributePair, WorkflowIDConflictPolicy

from dirhook.config import Settings
from dirhook.db.schema import Delivery, DeliveryAttempt, Endpoint, EventRow, utcnow
from dirhook.delivery import AttemptResult, WebhookSender
from dirhook.signing import Signer
from dirhook import temporal as t

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    sent: int
    failed: int
    remaining: bool


@dataclass
class RetryInput:
    delivery_id: int
    endpoint_id: str
    event_id: str
    event_type: str
    directory_id: str
    schedule: list[float]
    attempts_made: int = 1


@dataclass
class AttemptOutcome:
    succeeded: bool
    attempt: int
    status_code: int | None
    error: str | None
    retry_after: float | None
    gone: bool
    endpoint_disabled: bool


class DeliveryActivities:
    def __init__(self, sessions: sessionmaker, settings: Settings, client: Client, sender: WebhookSender):
        self.sessions = sessions
        self.settings = settings
        self.client = client
        self.sender = sender

    # -- happy path ---------------------------------------------------------------------------
    @activity.defn(name="deliver_pending")
    async def deliver_pending(self, endpoint_id: str) -> BatchResult:
        endpoint, batch = await asyncio.to_thread(self._load_batch, endpoint_id)
        if endpoint is None or not batch:
            return BatchResult(0, 0, False)
        signer = Signer([endpoint.secret])
        limit = asyncio.Semaphore(self.settings.delivery_concurrency)

        async def send(delivery_id: int, event_id: str, body: str) -> tuple[int, AttemptResult]:
            async with limit:
                return delivery_id, await self.sender.post(endpoint.url, signer.headers(event_id, body), body)

        results = await asyncio.gather(*(send(d, e, b) for d, e, b, _t, _dir in batch))
        meta = {d: (e, typ, dir_) for d, e, _b, typ, dir_ in batch}
        failed = [(d, r) for d, r in results if not r.succeeded]
        await asyncio.to_thread(self._record_batch, endpoint_id, results)
        schedule = [float(x) for x in (endpoint.retry_schedule or self.settings.retry_schedule_seconds)]
        for delivery_id, result in failed:
            event_id, event_type, directory_id = meta[delivery_id]
            if result.gone:
                await asyncio.to_thread(self._disable_endpoint, endpoint_id, "receiver answered 410 Gone")
            await self._start_retry(RetryInput(delivery_id, endpoint_id, event_id, event_type, directory_id, schedule))
        activity.heartbeat(len(results))
        return BatchResult(sent=len(results) - len(failed), failed=len(failed),
                           remaining=len(batch) >= self.settings.delivery_batch_size)

    def _load_batch(self, endpoint_id: str):
        with self.sessions() as s:
            endpoint = s.get(Endpoint, endpoint_id)
            if endpoint is None or not endpoint.enabled:
                return None, []
            rows = s.execute(
                select(Delivery.id, Delivery.event_id, EventRow.body, Delivery.event_type, Delivery.directory_id)
                .join(EventRow, EventRow.pk == Delivery.event_pk)
                .where(Delivery.endpoint_id == endpoint_id, Delivery.status == "pending")
                .order_by(Delivery.id).limit(self.settings.delivery_batch_size)
            ).all()
            return endpoint, [tuple(r) for r in rows]

    def _record_batch(self, endpoint_id: str, results: list[tuple[int, AttemptResult]]) -> None:
        with self.sessions.begin() as s:
            s.add_all([self._attempt_row(d, 1, r) for d, r in results])
            for delivery_id, r in results:
                s.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                    status="succeeded" if r.succeeded else "retrying", attempts=1,
                    last_status_code=r.status_code, last_error=r.error, updated_at=utcnow()))

    @staticmethod
    def _attempt_row(delivery_id: int, attempt: int, r: AttemptResult) -> DeliveryAttempt:
        return DeliveryAttempt(delivery_id=delivery_id, attempt=attempt, started_at=r.started_at,
                               status_code=r.status_code, latency_ms=r.latency_ms,
                               response_body=r.response_body, error=r.error)

    async def _start_retry(self, req: RetryInput) -> None:
        from workflows.webhook_delivery import WebhookDeliveryWorkflow

        await self.client.start_workflow(
            WebhookDeliveryWorkflow.run, req,
            id=t.delivery_workflow_id(req.endpoint_id, req.event_id),
            task_queue=self.settings.delivery_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(t.ENDPOINT_ID, req.endpoint_id),
                SearchAttributePair(t.EVENT_TYPE, req.event_type),
                SearchAttributePair(t.DIRECTORY_ID, req.directory_id),
            ]),
            static_summary=f"Retry {req.event_type} {req.event_id} to endpoint {req.endpoint_id}",
        )

    # -- retries --------------------------------------------------------------------------------
    @activity.defn(name="attempt_delivery")
    async def attempt_delivery(self, delivery_id: int) -> AttemptOutcome:
        loaded = await asyncio.to_thread(self._load_one, delivery_id)
        if loaded is None:
            return AttemptOutcome(False, 0, None, "delivery or endpoint no longer exists", None, False, True)
        delivery_attempts, event_id, body, url, secret, enabled, status = loaded
        if status == "succeeded":
            return AttemptOutcome(True, delivery_attempts, None, None, None, False, False)
        if not enabled:
            return AttemptOutcome(False, delivery_attempts, None, "endpoint is disabled", None, False, True)
        result = await self.sender.post(url, Signer([secret]).headers(event_id, body), body)
        attempt = delivery_attempts + 1
        await asyncio.to_thread(self._record_one, delivery_id, attempt, result)
        disabled = False
        if result.gone:
            await asyncio.to_thread(self._disable_endpoint_of, delivery_id, "receiver answered 410 Gone")
            disabled = True
        return AttemptOutcome(result.succeeded, attempt, result.status_code, result.error, result.retry_after,
                              result.gone, disabled)

    def _load_one(self, delivery_id: int):
        with self.sessions() as s:
            row = s.execute(
                select(Delivery.attempts, Delivery.event_id, EventRow.body, Endpoint.url, Endpoint.secret,
                       Endpoint.enabled, Delivery.status)
                .join(EventRow, EventRow.pk == Delivery.event_pk).join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.id == delivery_id)).first()
            return tuple(row) if row else None

    def _record_one(self, delivery_id: int, attempt: int, r: AttemptResult) -> None:
        with self.sessions.begin() as s:
            s.add(self._attempt_row(delivery_id, attempt, r))
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                status="succeeded" if r.succeeded else "retrying", attempts=attempt,
                last_status_code=r.status_code, last_error=r.error, updated_at=utcnow()))

    @activity.defn(name="schedule_next_attempt")
    async def schedule_next_attempt(self, delivery_id: int, delay_seconds: float) -> None:
        when = datetime.now(timezone.utc) + timedelta(seconds=delay_seconds)
        await asyncio.to_thread(self._set_next, delivery_id, when)

    def _set_next(self, delivery_id: int, when: datetime | None) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(next_attempt_at=when))

    @activity.defn(name="give_up_delivery")
    async def give_up(self, delivery_id: int, reason: str) -> None:
        def run():
            with self.sessions.begin() as s:
                s.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.status != "succeeded")
                          .values(status="failed", last_error=reason, next_attempt_at=None, updated_at=utcnow()))
        await asyncio.to_thread(run)

    def _disable_endpoint(self, endpoint_id: str, reason: str) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.enabled.is_(True))
                      .values(enabled=False, disabled_reason=reason))
        log.warning("endpoint %s disabled: %s", endpoint_id, reason)

    def _disable_endpoint_of(self, delivery_id: int, reason: str) -> None:
        with self.sessions() as s:
            endpoint_id = s.scalar(select(Delivery.endpoint_id).where(Delivery.id == delivery_id))
        if endpoint_id:
            self._disable_endpoint(endpoint_id, reason)

    # -- waking dispatchers ---------------------------------------------------------------------
    @activity.defn(name="wake_dispatchers")
    async def wake_dispatchers(self) -> int:
        """Signal (or start) the dispatcher of every endpoint that has pending deliveries."""
        def pending_endpoints() -> list[str]:
            with self.sessions() as s:
                return list(s.scalars(select(Delivery.endpoint_id).where(Delivery.status == "pending")
                                      .group_by(Delivery.endpoint_id)))
        endpoint_ids = await asyncio.to_thread(pending_endpoints)
        for endpoint_id in endpoint_ids:
            await wake_dispatcher(self.client, self.settings, endpoint_id)
        return len(endpoint_ids)


async def wake_dispatcher(client: Client, settings: Settings, endpoint_id: str) -> None:
    from workflows.endpoint_dispatch import EndpointDispatchWorkflow

    await client.start_workflow(
        EndpointDispatchWorkflow.run, endpoint_id,
        id=t.dispatch_workflow_id(endpoint_id),
        task_queue=settings.delivery_task_queue,
        start_signal="wake",
        search_attributes=TypedSearchAttributes([SearchAttributePair(t.ENDPOINT_ID, endpoint_id)]),
        static_summary=f"Deliver pending events to endpoint {endpoint_id}",
    )
