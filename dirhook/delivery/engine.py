"""The sending engine an endpoint's dispatcher runs: first attempts and retries in one
stream, the circuit breaker's probes, and strict FIFO chains.

No Temporal here: the dispatch activity passes a ``heartbeat`` callable and returns what
this returns. Each run is bounded (``STREAM_BUDGET``) so the workflow regains control
regularly; everything it leaves behind is a row some later run picks up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from dirhook.contracts import BatchResult
from dirhook.db.schema import utcnow
from dirhook.delivery.pacing import Pacer
from dirhook.delivery.rules import DeliveryStatus, Health
from dirhook.delivery.sender import AttemptResult, WebhookSender
from dirhook.delivery.store import DeliveryStore, EndpointSnapshot, Pending, Recorded
from dirhook.signing import Signer

log = logging.getLogger(__name__)

# FIFO retries due within this many seconds are waited out inside the activity; longer
# waits go back to the dispatcher workflow's durable timer.
FIFO_WAIT_IN_ACTIVITY = 10.0
# A run returns after this many seconds (the workflow starts the next one), and lingers this
# long for newly committed or newly due deliveries before it returns idle.
STREAM_BUDGET = 30.0
STREAM_LINGER = 1.0
FLUSH_EVERY = 200  # results recorded per transaction
HEARTBEAT_EVERY = 0.5  # seconds; the worker's throttle sends at most one a second

Heartbeat = Callable[..., None]


class Clock:
    """Now, as the Temporal server sees it: the server's start time of this activity attempt,
    advanced by the time elapsed here. In production that is the wall clock (to the
    servers' skew); under the time-skipping test server it is the skipped time, so the retry
    times written into rows agree with the dispatcher's durable timers."""

    def __init__(self, started: datetime | None = None):
        self.base = started
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        if self.base is None:
            return utcnow()
        return self.base + timedelta(seconds=time.monotonic() - self.t0)

    def seconds_until(self, when: datetime | None) -> float | None:
        if when is None:
            return None
        return max(0.0, (when - self.now()).total_seconds())


def breaker_text(h: Health) -> str:
    probe = h.next_probe_at.isoformat() if h.next_probe_at else "with the next event"
    return (
        f"circuit open since {h.breaker_opened_at.isoformat() if h.breaker_opened_at else '?'} "
        f"after {h.consecutive_failures} failed attempts in a row; next probe {probe}"
    )


class DeliveryEngine:
    def __init__(self, store: DeliveryStore, sender: WebhookSender):
        self.store = store
        self.sender = sender
        self.rng = random.Random()

    async def dispatch(
        self,
        endpoint_id: str,
        next_slot: float | None,
        heartbeat: Heartbeat = lambda *_: None,
        clock: Clock | None = None,
    ) -> BatchResult:
        clock = clock or Clock()
        # Heartbeats from a task of their own: a single POST may take longer than the
        # activity's heartbeat timeout (10 s) allows between two of them.
        beating = asyncio.create_task(_beat(heartbeat))
        try:
            return await self._dispatch(endpoint_id, next_slot, clock)
        finally:
            beating.cancel()

    async def _dispatch(self, endpoint_id: str, next_slot: float | None, clock: Clock) -> BatchResult:
        ep = await asyncio.to_thread(self.store.snapshot, endpoint_id)
        if ep is None:
            return BatchResult(0, 0, False, next_slot)
        if not ep.enabled:
            # The dispatcher shows this in the Temporal UI and waits for the endpoint's enable.
            return BatchResult(0, 0, False, next_slot, blocked=f"endpoint disabled: {ep.disabled_reason}")
        pacer = Pacer(ep.rate, next_slot)
        if ep.fifo:
            return await self._fifo(ep, pacer, clock)
        probed = 0
        if ep.health.open:
            outcome = await self._probe(ep, pacer, clock)
            if isinstance(outcome, BatchResult):
                return outcome
            probed = 1
            ep = await asyncio.to_thread(self.store.snapshot, endpoint_id) or ep
        result = await self._stream(ep, pacer, clock)
        result.sent += probed
        return result

    # -- the circuit breaker's probe ---------------------------------------------------------
    async def _probe(self, ep: EndpointSnapshot, pacer: Pacer, clock: Clock) -> BatchResult | None:
        """While the breaker is open only one request goes out, when the probe is due: the
        oldest delivery still to send. None when it succeeded (the breaker closed)."""
        wait = clock.seconds_until(ep.health.next_probe_at)
        if wait:
            return BatchResult(
                0,
                0,
                False,
                pacer.next_slot or None,
                retry_in=wait,
                blocked=breaker_text(ep.health),
                health=ep.health.state,
                held=await asyncio.to_thread(self.store.count, ep.id, DeliveryStatus.HELD),
            )
        d = await asyncio.to_thread(self.store.oldest_open, ep.id)
        if d is None:  # nothing to probe with: the next event will be the probe
            return BatchResult(0, 0, False, pacer.next_slot or None, health=ep.health.state)
        await pacer.wait()
        r = await self._post(ep, Signer(ep.secrets), d)
        rec = await asyncio.to_thread(self.store.record, ep.id, [(d, r)], clock.now(), self.rng)
        log.info(
            "probe of endpoint %s with delivery %s: %s",
            ep.id,
            d.id,
            "succeeded, circuit closed" if r.succeeded else f"failed ({r.status_code or r.error})",
            extra={"endpoint_id": ep.id, "delivery_id": d.id},
        )
        if rec is None:
            return BatchResult(0, 0, False)
        if rec.disabled:
            return BatchResult(0, 1, False, blocked=f"endpoint disabled: {rec.disabled}")
        if rec.health.open:
            return BatchResult(
                0,
                1,
                False,
                pacer.next_slot or None,
                retry_in=clock.seconds_until(rec.health.next_probe_at),
                blocked=breaker_text(rec.health),
                health=rec.health.state,
                held=await asyncio.to_thread(self.store.count, ep.id, DeliveryStatus.HELD),
            )
        return None

    async def _post(self, ep: EndpointSnapshot, signer: Signer, d: Pending) -> AttemptResult:
        """One attempt: the endpoint's custom headers, then the signature's (which no custom
        header may replace), with its client certificate if it has one."""
        headers = {**ep.headers, **signer.headers(d.event_id, d.body)}
        return await self.sender.post(ep.url, headers, d.body, ep.timeout, client_certificate=ep.client_certificate)

    # -- first attempts and retries, streamed ------------------------------------------------
    async def _stream(self, ep: EndpointSnapshot, pacer: Pacer, clock: Clock) -> BatchResult:
        """Sends pending deliveries and due retries as one stream: ``concurrency`` senders
        pull from a queue that the loop below keeps filled page by page, results are
        recorded in bulk beside the sending (each recording also decides every row's next
        state), and the run lingers briefly for new commits and retries coming due before it
        returns, so a steady load never waits for a round trip through the workflow."""
        signer = Signer(ep.secrets)
        queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        done: list[tuple[Pending, AttemptResult]] = []
        inflight: set[int] = set()  # loaded and not yet recorded: never loaded twice
        # A load that ran while a recording committed may return rows in their old state (a
        # due retry that has just succeeded): rows recorded after a load began are dropped
        # from it. ``flushes`` counts completed recordings; ``recorded_at`` maps each
        # recently recorded row to the count after its recording.
        flushes = [0]
        recorded_at: dict[int, int] = {}
        counts = {"sent": 0, "failed": 0, "busy": 0}
        stopped: list[str] = []  # why sending stopped early: endpoint disabled, circuit opened
        last: list[Recorded] = []

        async def sender() -> None:
            while (d := await queue.get()) is not None:
                if stopped:
                    inflight.discard(d.id)
                    continue  # stays as it is: sent after the endpoint recovers
                counts["busy"] += 1
                try:
                    await pacer.wait()
                    done.append((d, await self._post(ep, signer, d)))
                finally:
                    counts["busy"] -= 1

        async def flush() -> None:
            batch = done[:]
            del done[: len(batch)]
            if not batch:
                return
            rec = await asyncio.to_thread(self.store.record, ep.id, batch, clock.now(), self.rng)
            flushes[0] += 1
            for d, _r in batch:
                recorded_at[d.id] = flushes[0]
                inflight.discard(d.id)
            failed = [(d, r) for d, r in batch if not r.succeeded]
            counts["sent"] += len(batch) - len(failed)
            counts["failed"] += len(failed)
            if rec is None:
                stopped.append("endpoint deleted")
                return
            last[:] = [rec]
            if failed:
                log.info(
                    "%d of %d deliveries to endpoint %s failed (first: %s): %s",
                    len(failed),
                    len(batch),
                    ep.id,
                    failed[0][1].status_code or failed[0][1].error,
                    "held by the open circuit breaker" if rec.health.open else "retried on their schedule",
                    extra={"endpoint_id": ep.id},
                )
            if rec.disabled:
                stopped.append(f"endpoint disabled: {rec.disabled}")
                log.warning("endpoint %s disabled: %s", ep.id, rec.disabled, extra={"endpoint_id": ep.id})
            elif rec.opened:
                stopped.append(breaker_text(rec.health))
                log.warning("endpoint %s: %s", ep.id, breaker_text(rec.health), extra={"endpoint_id": ep.id})

        def load_page(cursor: int) -> tuple[EndpointSnapshot | None, list[Pending], list[Pending]]:
            # The endpoint is read again with every page: a rotation window that ends, a
            # disable or a new URL applies within one page, not one run.
            return (
                self.store.snapshot(ep.id),
                self.store.load_pending(ep.id, cursor),
                self.store.load_due_retries(ep.id, clock.now()),
            )

        senders = [asyncio.create_task(sender()) for _ in range(ep.concurrency)]
        loop = asyncio.get_running_loop()
        started = last_work = loop.time()
        cursor, more = 0, False
        low_water = self.store.settings.delivery_batch_size // 2
        flushing: asyncio.Task[None] | None = None  # one recording at a time, beside the sending
        try:
            while not stopped:
                if loop.time() - started > STREAM_BUDGET:
                    more = True
                    break
                if queue.qsize() <= low_water:
                    began = flushes[0]
                    fresh, page, due = await asyncio.to_thread(load_page, cursor)
                    if fresh is None or not fresh.enabled:
                        if fresh is not None:
                            stopped.append(f"endpoint disabled: {fresh.disabled_reason}")
                        break
                    if fresh.secrets != ep.secrets:
                        signer = Signer(fresh.secrets)
                    ep = fresh
                    if page:
                        cursor = page[-1].id
                    fresh_rows = [d for d in page + due if d.id not in inflight and recorded_at.get(d.id, 0) <= began]
                    # What was recorded before this load began, it saw as recorded.
                    recorded_at = {k: v for k, v in recorded_at.items() if v > began}
                    for d in fresh_rows:
                        inflight.add(d.id)
                        queue.put_nowait(d)
                    if fresh_rows:
                        last_work = loop.time()
                    elif queue.empty() and not counts["busy"] and not done and loop.time() - last_work > STREAM_LINGER:
                        break
                if (flushing is None or flushing.done()) and (
                    len(done) >= FLUSH_EVERY or (done and queue.empty() and not counts["busy"])
                ):
                    if flushing is not None:
                        flushing.result()  # surface a failed recording
                    flushing = asyncio.create_task(flush())
                await asyncio.sleep(0.02)
        finally:
            while not queue.empty():  # what was loaded but not sent stays as it is
                queue.get_nowait()
            for _ in senders:
                queue.put_nowait(None)
            await asyncio.gather(*senders)
            if flushing is not None:
                await flushing
            await flush()
        health = last[0].health if last else ep.health
        result = BatchResult(
            sent=counts["sent"],
            failed=counts["failed"],
            remaining=more and not stopped,
            next_slot=pacer.next_slot or None,
            health=health.state,
            blocked="; ".join(stopped) if stopped else None,
        )
        if health.open:
            result.retry_in = clock.seconds_until(health.next_probe_at)
            result.held = await asyncio.to_thread(self.store.count, ep.id, DeliveryStatus.HELD)
        elif not result.remaining:
            result.retry_in = clock.seconds_until(await asyncio.to_thread(self.store.next_retry_at, ep.id))
        return result

    # -- FIFO ---------------------------------------------------------------------------------
    async def _fifo(self, ep: EndpointSnapshot, pacer: Pacer, clock: Clock) -> BatchResult:
        """Strict per-directory order: each directory's deliveries go one at a time, in sequence;
        a failing one blocks those after it (retried on the schedule here, by the dispatcher's
        timer) until it succeeds or an operator skips it. No circuit breaker: a failing
        endpoint already gets only each directory's head, at the schedule's pace."""
        rows = await asyncio.to_thread(self.store.load_fifo, ep.id)
        chains: dict[str, list[Pending]] = defaultdict(list)
        for d in rows:
            chains[d.directory_id].append(d)
        signer = Signer(ep.secrets)
        limit = asyncio.Semaphore(ep.concurrency)
        counts = {"sent": 0, "failed": 0}
        waits: list[tuple[float, str]] = []
        stopped: list[str] = []

        async def run_chain(chain: list[Pending]) -> bool:
            """True when the chain was sent to its end."""
            for d in chain:
                while True:
                    if d.status == DeliveryStatus.FAILED:
                        stopped.append(f"{d.event_id} failed after {d.attempts} attempts: skip or resend it")
                        return False
                    wait = clock.seconds_until(d.next_attempt_at) if d.status == DeliveryStatus.RETRYING else None
                    if wait:
                        waits.append((wait, d.event_id))
                        return False
                    async with limit:
                        await pacer.wait()
                        r = await self._post(ep, signer, d)
                    rec = await asyncio.to_thread(self.store.record, ep.id, [(d, r)], clock.now(), self.rng)
                    if rec is None:
                        stopped.append("endpoint deleted")
                        return False
                    change = rec.changes[d.id]
                    if r.succeeded:
                        counts["sent"] += 1
                        break
                    counts["failed"] += 1
                    if rec.disabled:
                        stopped.append(f"endpoint disabled: {rec.disabled}")
                        return False
                    d.attempts += 1
                    d.status, d.next_attempt_at = change.status, change.next_attempt_at
                    wait = clock.seconds_until(change.next_attempt_at)
                    if wait is not None and wait <= FIFO_WAIT_IN_ACTIVITY:
                        # Short waits are cheaper here than a round trip through a durable timer.
                        await asyncio.sleep(wait)
                        d.status = DeliveryStatus.PENDING
            return True

        finished = await asyncio.gather(*(run_chain(c) for c in chains.values()))
        retry_in, blocked = None, None
        if waits:
            retry_in, event_id = min(waits)
            blocked = f"{event_id} waits for its retry"
        if stopped:
            blocked = "; ".join(stopped)
        return BatchResult(
            sent=counts["sent"],
            failed=counts["failed"],
            remaining=len(rows) >= self.store.settings.delivery_batch_size and all(finished),
            next_slot=pacer.next_slot or None,
            retry_in=retry_in,
            blocked=blocked,
        )


async def _beat(heartbeat: Heartbeat) -> None:
    while True:
        heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY)
