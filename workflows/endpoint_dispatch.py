"""EndpointDispatchWorkflow: sends an endpoint's deliveries — first attempts and retries.

One per endpoint (``dispatch/<endpoint_id>``), woken by signal-with-start whenever events
are committed (and by the delivery sweep). Temporal is the control plane here, not the data
plane: one activity streams a whole backlog, retries included, and a failed delivery is a
row with its next attempt time, never a workflow of its own. Between runs the workflow
sleeps on a durable timer until the next retry or circuit-breaker probe is due.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities
    from dirhook.contracts import BatchResult, DispatchCounts, DispatchInput, EndpointHealth
    from dirhook.temporal import ENDPOINT_HEALTH

# How long an idle dispatcher waits for another wake-up before it completes.
IDLE_TIMEOUT = timedelta(seconds=30)
MAX_BATCHES_PER_RUN = 200
# The activity heartbeats every half second: a lost worker's run is retried on another
# within seconds (it was 2 minutes, and a killed worker's backlog waited that long).
DISPATCH_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# workflow.patched IDs (README, "Changing workflows safely").
HEALTH_ATTRIBUTE_PATCH = "endpoint-health-search-attribute"


@workflow.defn
class EndpointDispatchWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self._sent = 0
        self._failed = 0
        self._last: BatchResult | None = None
        self._health: EndpointHealth | None = None

    @workflow.signal
    def wake(self) -> None:
        self._woken = True

    @workflow.query
    def counts(self) -> DispatchCounts:
        last = self._last
        if last is None:
            return DispatchCounts(self._sent, self._failed)
        return DispatchCounts(self._sent, self._failed, last.blocked, last.health, last.held)

    def _show(self, batches: int, result: BatchResult) -> None:
        details = (
            f"batches: {batches}, sent: {self._sent}, failed attempts: {self._failed}"
            f"\n\nendpoint: {result.health.replace('_', ' ')}"
        )
        if result.held:
            details += f", {result.held} deliveries held"
        if result.retry_in is not None:
            details += f"\n\nnext retry or probe in {result.retry_in:.1f} s"
        if result.blocked:
            details += f"\n\nblocked: {result.blocked}"
        workflow.set_current_details(details)

    @workflow.run
    async def run(self, req: DispatchInput) -> DispatchCounts:
        batches = 0
        next_slot = req.next_slot
        while True:
            self._woken = False
            result = await workflow.execute_activity_method(
                DeliveryActivities.deliver_pending,
                DispatchInput(req.endpoint_id, next_slot),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=DISPATCH_HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
                summary="send pending deliveries and due retries",
            )
            batches += 1
            next_slot = result.next_slot
            self._sent += result.sent
            self._failed += result.failed
            self._last = result
            self._show(batches, result)
            # Searchable (`EndpointHealth = 'circuit_open'`); patched in, so dispatchers that
            # started before it replay as they ran (README, "Changing workflows safely").
            if result.health != self._health and workflow.patched(HEALTH_ATTRIBUTE_PATCH):
                workflow.upsert_search_attributes([ENDPOINT_HEALTH.value_set(result.health)])
                self._health = result.health
            if batches >= MAX_BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(DispatchInput(req.endpoint_id, next_slot))
            if result.remaining or self._woken:
                continue
            # Sleep until the next retry or probe is due (a new commit wakes us sooner);
            # blocked for good (endpoint disabled, FIFO head failed): wait for an operator's
            # enable, skip or resend, which wakes us.
            if result.retry_in is not None:
                timeout: timedelta | None = timedelta(seconds=max(result.retry_in, 0.05))
            elif result.blocked:
                timeout = None
            else:
                timeout = IDLE_TIMEOUT
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=timeout)
            except TimeoutError:
                pass
            if not self._woken and result.retry_in is None:
                return self.counts()
