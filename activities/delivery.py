"""Delivery activities: batches on the happy path, single attempts for retries, FIFO chains."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from dirhook import temporal as t
from dirhook.config import Settings
from dirhook.db.schema import Delivery, DeliveryAttempt, Endpoint, EventRow, utcnow
from dirhook.delivery import AttemptResult, Pacer, WebhookSender, retry_delay
from dirhook.endpoint_state import GONE_REASON, record_health, set_enabled, signing_secrets
from dirhook.signing import Signer

log = logging.getLogger(__name__)

# FIFO retries due within this many seconds are waited out inside the activity; longer
# waits go back to the dispatcher workflow's durable timer.
FIFO_WAIT_IN_ACTIVITY = 10.0
# A streaming activity returns after this many seconds (the workflow starts the next one),
# and lingers this long for newly committed deliveries before it returns idle.
STREAM_BUDGET = 30.0
STREAM_LINGER = 1.0
FLUSH_EVERY = 200  # results recorded per transaction


@dataclass
class DispatchInput:
    endpoint_id: str
    # Epoch seconds of the next send the endpoint's rate limit allows, carried between batches.
    next_slot: float | None = None


@dataclass
class BatchResult:
    sent: int
    failed: int
    remaining: bool
    next_slot: float | None = None
    # FIFO: seconds until a blocked chain may be retried, and what blocks it.
    retry_in: float | None = None
    blocked: str | None = None


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
class AttemptInput:
    delivery_id: int
    scheduled_for: str | None = None  # ISO time the schedule planned this attempt for


@dataclass
class AttemptOutcome:
    succeeded: bool
    attempt: int
    status_code: int | None
    error: str | None
    retry_after: float | None
    gone: bool
    endpoint_disabled: bool


@dataclass
class EndpointSnapshot:
    """What one batch needs to know of an endpoint (secrets stay in this process, never in history)."""

    id: str
    url: str
    enabled: bool
    fifo: bool
    rate: float | None
    concurrency: int
    timeout: float
    schedule: list[float]
    secrets: list[str] = field(repr=False, default_factory=list)
    disabled_reason: str | None = None


@dataclass
class Pending:
    id: int
    event_id: str
    body: str
    event_type: str
    directory_id: str
    attempts: int
    status: str
    next_attempt_at: datetime | None


class DeliveryActivities:
    def __init__(self, sessions: sessionmaker, settings: Settings, client: Client, sender: WebhookSender):
        self.sessions = sessions
        self.settings = settings
        self.client = client
        self.sender = sender

    # -- loading -------------------------------------------------------------------------------
    def _snapshot(self, endpoint_id: str) -> EndpointSnapshot | None:
        with self.sessions() as s:
            e = s.get(Endpoint, endpoint_id)
            if e is None:
                return None
            return EndpointSnapshot(
                id=e.id, url=e.url, enabled=e.enabled, fifo=e.fifo, rate=e.rate_limit_per_second,
                concurrency=e.max_concurrency or self.settings.delivery_concurrency,
                timeout=e.timeout_seconds or self.settings.delivery_timeout_seconds,
                schedule=[float(x) for x in (e.retry_schedule or self.settings.retry_schedule_seconds)],
                secrets=signing_secrets(s, e), disabled_reason=e.disabled_reason,
            )

    def _load(self, endpoint_id: str, statuses: tuple[str, ...], after_id: int = 0,
              by_id: bool = False) -> list[Pending]:
        # Core tables, not ORM entities: on this hot path the ORM's row loading cost more
        # than the query (profiled with py-spy under bench/delivery_throughput.py).
        d, e = Delivery.__table__.c, EventRow.__table__.c
        q = (select(d.id, d.event_id, e.body, d.event_type, d.directory_id, d.attempts, d.status, d.next_attempt_at)
             .join_from(Delivery.__table__, EventRow.__table__, e.pk == d.event_pk)
             .where(d.endpoint_id == endpoint_id, d.status.in_(statuses))
             .limit(self.settings.delivery_batch_size))
        q = q.where(d.id > after_id).order_by(d.id) if by_id else q.order_by(d.event_pk)
        with self.sessions() as s:
            rows = s.connection().execute(q).all()
        return [Pending(*r) for r in rows]

    # -- recording -----------------------------------------------------------------------------
    def _record(self, endpoint_id: str, outcomes: list[tuple[Pending, AttemptResult, dict[str, Any]]],
                scheduled_for: datetime | None = None) -> str | None:
        """Attempts and their deliveries' new state in one transaction, plus endpoint health.
        ``outcomes`` pairs each delivery with its result and the column values to set.
        Returns why the endpoint was disabled, if this disabled it."""
        if not outcomes:
            return None
        now = utcnow()
        with self.sessions.begin() as s:
            s.connection().execute(insert(DeliveryAttempt.__table__), [
                {"delivery_id": d.id, "attempt": d.attempts + 1, "scheduled_for": scheduled_for,
                 "started_at": r.started_at, "status_code": r.status_code, "latency_ms": r.latency_ms,
                 "response_body": r.response_body, "error": r.error} for d, r, _v in outcomes])
            # One UPDATE per distinct outcome rather than per delivery: a batch is mostly alike.
            groups: dict[tuple, list[int]] = defaultdict(list)
            for d, r, values in outcomes:
                key = tuple(sorted({"attempts": d.attempts + 1, "last_status_code": r.status_code,
                                    "last_error": r.error, **values}.items(), key=lambda kv: kv[0]))
                groups[key].append(d.id)
            table = Delivery.__table__
            for key, ids in groups.items():
                s.connection().execute(update(table).where(table.c.id.in_(ids)).values(**dict(key), updated_at=now))
            endpoint = s.get(Endpoint, endpoint_id)
            if endpoint is None:
                return None
            if any(r.gone for _d, r, _v in outcomes):
                set_enabled(s, endpoint, False, GONE_REASON, "gone")
                return GONE_REASON
            disable_after = timedelta(seconds=endpoint.disable_after_seconds
                                      or self.settings.endpoint_disable_after_seconds)
            return record_health(s, endpoint, any(r.succeeded for _d, r, _v in outcomes), now, disable_after)

    def _set_status(self, delivery_id: int, **values: Any) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values, updated_at=utcnow()))

    # -- happy path ---------------------------------------------------------------------------
    @activity.defn(name="deliver_pending")
    async def deliver_pending(self, req: DispatchInput) -> BatchResult:
        ep = await asyncio.to_thread(self._snapshot, req.endpoint_id)
        if ep is None:
            return BatchResult(0, 0, False, req.next_slot)
        if not ep.enabled:
            # The dispatcher shows this in the Temporal UI and waits for the endpoint's enable.
            return BatchResult(0, 0, False, req.next_slot, blocked=f"endpoint disabled: {ep.disabled_reason}")
        pacer = Pacer(ep.rate, req.next_slot)
        if ep.fifo:
            return await self._deliver_fifo(ep, pacer)
        return await self._stream(ep, pacer)

    async def _stream(self, ep: EndpointSnapshot, pacer: Pacer) -> BatchResult:
        """Sends pending deliveries as a stream: ``concurrency`` senders pull from a queue that
        the loop below keeps filled page by page, results are recorded in bulk beside the
        sending, and the activity lingers briefly for new commits before it returns, so a
        steady load never waits for a round trip through the workflow. Bounded by
        ``STREAM_BUDGET`` per activity."""
        signer = Signer(ep.secrets)
        queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        done: list[tuple[Pending, AttemptResult]] = []
        counts = {"sent": 0, "failed": 0, "busy": 0}
        disabled: list[str] = []

        async def sender() -> None:
            while (d := await queue.get()) is not None:
                if disabled:
                    continue  # stays pending, delivered after the endpoint is enabled again
                counts["busy"] += 1
                try:
                    await pacer.wait()
                    done.append((d, await self.sender.post(ep.url, signer.headers(d.event_id, d.body), d.body,
                                                           ep.timeout)))
                finally:
                    counts["busy"] -= 1

        async def flush() -> None:
            batch = done[:]
            del done[:len(batch)]
            if not batch:
                return
            outcomes = [(d, r, {"status": "succeeded" if r.succeeded else "retrying", "next_attempt_at": None})
                        for d, r in batch]
            reason = await asyncio.to_thread(self._record, ep.id, outcomes)
            if reason:
                disabled.append(reason)
                log.warning("endpoint %s disabled: %s", ep.id, reason, extra={"endpoint_id": ep.id})
            for d, r in batch:
                if r.succeeded:
                    counts["sent"] += 1
                else:
                    counts["failed"] += 1
                    log.info("delivery %s of %s to endpoint %s failed (%s): retrying on its schedule", d.id,
                             d.event_id, ep.id, r.status_code or r.error,
                             extra={"endpoint_id": ep.id, "event_id": d.event_id, "delivery_id": d.id,
                                    "directory_id": d.directory_id})
                    await self._start_retry(RetryInput(d.id, ep.id, d.event_id, d.event_type, d.directory_id,
                                                       ep.schedule, attempts_made=d.attempts + 1))
            activity.heartbeat({"sent": counts["sent"], "failed": counts["failed"]})

        def load_page(cursor: int) -> tuple[EndpointSnapshot | None, list[Pending]]:
            # The endpoint is read again with every page: a rotation window that ends, a
            # disable or a new URL applies within one page, not one activity.
            return self._snapshot(ep.id), self._load(ep.id, ("pending",), cursor, True)

        senders = [asyncio.create_task(sender()) for _ in range(ep.concurrency)]
        loop = asyncio.get_running_loop()
        started = last_work = loop.time()
        cursor, more = 0, False
        low_water = self.settings.delivery_batch_size // 2
        flushing: asyncio.Task | None = None  # one recording at a time, beside the sending
        try:
            while not disabled:
                if loop.time() - started > STREAM_BUDGET:
                    more = True
                    break
                if queue.qsize() <= low_water:
                    fresh, page = await asyncio.to_thread(load_page, cursor)
                    if fresh is None or not fresh.enabled:
                        break
                    if fresh.secrets != ep.secrets:
                        signer = Signer(fresh.secrets)
                    ep = fresh
                    if page:
                        cursor, last_work = page[-1].id, loop.time()
                        for d in page:
                            queue.put_nowait(d)
                    elif queue.empty() and not counts["busy"] and loop.time() - last_work > STREAM_LINGER:
                        break
                if (flushing is None or flushing.done()) and (
                        len(done) >= FLUSH_EVERY or (done and queue.empty() and not counts["busy"])):
                    if flushing is not None:
                        flushing.result()  # surface a failed recording
                    flushing = asyncio.create_task(flush())
                await asyncio.sleep(0.02)
        finally:
            while not queue.empty():  # what was loaded but not sent stays pending
                queue.get_nowait()
            for _ in senders:
                queue.put_nowait(None)
            await asyncio.gather(*senders)
            if flushing is not None:
                await flushing
            await flush()
        return BatchResult(sent=counts["sent"], failed=counts["failed"], remaining=more and not disabled,
                           next_slot=pacer.next_slot or None,
                           blocked=f"endpoint disabled: {disabled[0]}" if disabled else None)

    async def _start_retry(self, req: RetryInput) -> None:
        await self.client.start_workflow(
            "WebhookDeliveryWorkflow", req,
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

    # -- FIFO ---------------------------------------------------------------------------------
    async def _deliver_fifo(self, ep: EndpointSnapshot, pacer: Pacer) -> BatchResult:
        """Strict per-directory order: each directory's deliveries go one at a time, in sequence;
        a failing one blocks those after it (retried on the schedule here, by the dispatcher's
        timer) until it succeeds or an operator skips it."""
        rows = await asyncio.to_thread(self._load, ep.id, ("pending", "retrying", "failed"))
        chains: dict[str, list[Pending]] = defaultdict(list)
        for d in rows:
            chains[d.directory_id].append(d)
        signer = Signer(ep.secrets)
        limit = asyncio.Semaphore(ep.concurrency)
        rng = random.Random()
        counts = {"sent": 0, "failed": 0}
        waits: list[tuple[float, str]] = []
        stopped: list[str] = []

        async def run_chain(chain: list[Pending]) -> bool:
            """True when the chain was sent to its end."""
            for d in chain:
                while True:
                    now = datetime.now(timezone.utc)
                    if d.status == "failed":
                        stopped.append(f"{d.event_id} failed after {d.attempts} attempts: skip or resend it")
                        return False
                    if d.next_attempt_at and d.next_attempt_at > now:
                        waits.append(((d.next_attempt_at - now).total_seconds(), d.event_id))
                        return False
                    async with limit:
                        await pacer.wait()
                        r = await self.sender.post(ep.url, signer.headers(d.event_id, d.body), d.body, ep.timeout)
                    if r.succeeded:
                        counts["sent"] += 1
                        await asyncio.to_thread(self._record, ep.id,
                                                [(d, r, {"status": "succeeded", "next_attempt_at": None})])
                        break
                    counts["failed"] += 1
                    delay = None if r.gone else retry_delay(ep.schedule, d.attempts + 1, r.retry_after, rng)
                    if delay is None:
                        values = {"status": "failed", "next_attempt_at": None}
                    else:
                        values = {"status": "retrying", "next_attempt_at": now + timedelta(seconds=delay)}
                    disabled = await asyncio.to_thread(self._record, ep.id, [(d, r, values)])
                    if disabled:
                        stopped.append(f"endpoint disabled: {disabled}")
                        return False
                    d.attempts += 1
                    d.status, d.next_attempt_at = values["status"], values["next_attempt_at"]
                    if delay is not None and delay <= FIFO_WAIT_IN_ACTIVITY:
                        # Short waits are cheaper here than a round trip through a durable timer.
                        activity.heartbeat(d.event_id)
                        await asyncio.sleep(delay)
                        d.next_attempt_at = None
            return True

        finished = await asyncio.gather(*(run_chain(c) for c in chains.values()))
        retry_in, blocked = None, None
        if waits:
            retry_in, event_id = min(waits)
            blocked = f"{event_id} waits for its retry"
        if stopped:
            blocked = "; ".join(stopped)
        return BatchResult(sent=counts["sent"], failed=counts["failed"],
                           remaining=len(rows) >= self.settings.delivery_batch_size and all(finished),
                           next_slot=pacer.next_slot or None, retry_in=retry_in, blocked=blocked)

    # -- retries --------------------------------------------------------------------------------
    @activity.defn(name="attempt_delivery")
    async def attempt_delivery(self, req: AttemptInput) -> AttemptOutcome:
        loaded = await asyncio.to_thread(self._load_one, req.delivery_id)
        if loaded is None:
            return AttemptOutcome(False, 0, None, "delivery or endpoint no longer exists", None, False, True)
        d, ep = loaded
        if d.status == "succeeded":
            return AttemptOutcome(True, d.attempts, None, None, None, False, False)
        if not ep.enabled:
            # Kept for an operator's recovery once the endpoint is enabled again.
            await asyncio.to_thread(self._set_status, d.id, status="skipped", next_attempt_at=None,
                                    last_error="endpoint disabled")
            return AttemptOutcome(False, d.attempts, None, "endpoint is disabled", None, False, True)
        r = await self.sender.post(ep.url, Signer(ep.secrets).headers(d.event_id, d.body), d.body, ep.timeout)
        scheduled = datetime.fromisoformat(req.scheduled_for) if req.scheduled_for else None
        disabled = await asyncio.to_thread(
            self._record, ep.id, [(d, r, {"status": "succeeded" if r.succeeded else "retrying", "next_attempt_at": None})],
            scheduled)
        log.info("attempt %d of delivery %s (%s to endpoint %s): %s", d.attempts + 1, d.id, d.event_id, ep.id,
                 "succeeded" if r.succeeded else f"failed ({r.status_code or r.error})",
                 extra={"endpoint_id": ep.id, "event_id": d.event_id, "delivery_id": d.id,
                        "directory_id": d.directory_id})
        return AttemptOutcome(r.succeeded, d.attempts + 1, r.status_code, r.error, r.retry_after, r.gone,
                              disabled is not None)

    def _load_one(self, delivery_id: int) -> tuple[Pending, EndpointSnapshot] | None:
        with self.sessions() as s:
            row = s.execute(
                select(Delivery.id, Delivery.event_id, EventRow.body, Delivery.event_type, Delivery.directory_id,
                       Delivery.attempts, Delivery.status, Delivery.next_attempt_at, Delivery.endpoint_id)
                .join(EventRow, EventRow.pk == Delivery.event_pk).where(Delivery.id == delivery_id)).first()
        if row is None:
            return None
        ep = self._snapshot(row[-1])
        return (Pending(*row[:-1]), ep) if ep else None

    @activity.defn(name="schedule_next_attempt")
    async def schedule_next_attempt(self, delivery_id: int, delay_seconds: float) -> None:
        when = datetime.now(timezone.utc) + timedelta(seconds=delay_seconds)
        await asyncio.to_thread(self._set_status, delivery_id, next_attempt_at=when)

    @activity.defn(name="give_up_delivery")
    async def give_up(self, delivery_id: int, reason: str) -> None:
        def run() -> None:
            with self.sessions.begin() as s:
                s.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.status == "retrying")
                          .values(status="failed", last_error=reason, next_attempt_at=None, updated_at=utcnow()))
        await asyncio.to_thread(run)

    # -- waking dispatchers ---------------------------------------------------------------------
    @activity.defn(name="wake_dispatchers")
    async def wake_dispatchers(self) -> int:
        """Signal (or start) the dispatcher of every enabled endpoint that has pending deliveries."""
        def pending_endpoints() -> list[str]:
            with self.sessions() as s:
                return list(s.scalars(
                    select(Delivery.endpoint_id).join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                    .where(Delivery.status == "pending", Endpoint.enabled.is_(True)).group_by(Delivery.endpoint_id)))
        endpoint_ids = await asyncio.to_thread(pending_endpoints)
        for endpoint_id in endpoint_ids:
            await t.wake_dispatcher(self.client, self.settings, endpoint_id)
        return len(endpoint_ids)
