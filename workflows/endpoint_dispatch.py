"""EndpointDispatchWorkflow: sends an endpoint's pending deliveries in batches.

One per endpoint (``dispatch/<endpoint_id>``), woken by signal-with-start whenever events
are committed. Temporal is the control plane here, not the data plane: one activity sends
a whole batch (design.md), and only a failed delivery becomes a workflow of its own.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery import BatchResult, DispatchInput

# How long an idle dispatcher waits for another wake-up before it completes.
IDLE_TIMEOUT = timedelta(seconds=30)
MAX_BATCHES_PER_RUN = 200


@workflow.defn
class EndpointDispatchWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self._sent = 0
        self._failed = 0
        self._blocked: str | None = None

    @workflow.signal
    def wake(self) -> None:
        self._woken = True

    @workflow.query
    def counts(self) -> dict:
        return {"sent": self._sent, "failed": self._failed, "blocked": self._blocked}

    @workflow.run
    async def run(self, req: DispatchInput) -> dict:
        batches = 0
        next_slot = req.next_slot
        while True:
            self._woken = False
            result: BatchResult = await workflow.execute_activity(
                "deliver_pending", DispatchInput(req.endpoint_id, next_slot), result_type=BatchResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
                summary="send pending batch",
            )
            batches += 1
            next_slot = result.next_slot
            self._sent += result.sent
            self._failed += result.failed
            self._blocked = result.blocked
            details = f"batches: {batches}, sent: {self._sent}, failed (retrying): {self._failed}"
            if result.blocked:
                details += f"\n\nblocked: {result.blocked}"
            workflow.set_current_details(details)
            if batches >= MAX_BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(DispatchInput(req.endpoint_id, next_slot))
            if result.remaining or self._woken:
                continue
            # FIFO: sleep until the blocked head may be retried; blocked for good (its retries
            # used up): wait for an operator's skip or resend, which wakes us.
            if result.retry_in is not None:
                timeout: timedelta | None = timedelta(seconds=max(result.retry_in, 0.01))
            elif result.blocked:
                timeout = None
            else:
                timeout = IDLE_TIMEOUT
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=timeout)
            except TimeoutError:
                pass
            if not self._woken and result.retry_in is None:
                return {"sent": self._sent, "failed": self._failed}
