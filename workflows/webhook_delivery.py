"""WebhookDeliveryWorkflow: the durable retries of one failed delivery.

``delivery/<endpoint_id>/<event_id>``: waits out the retry schedule with durable timers,
one activity per attempt, until a 2xx, a 410 (endpoint disabled), or the end of the
schedule. Its current details show the attempt, last status and next retry time.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery import AttemptInput, AttemptOutcome, RetryInput
    from dirhook.delivery import retry_delay

ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn
class WebhookDeliveryWorkflow:
    def __init__(self) -> None:
        self._state: dict = {}

    @workflow.query
    def state(self) -> dict:
        return self._state

    def _show(self, **kw) -> None:
        self._state.update(kw)
        s = self._state
        lines = [f"attempts: {s.get('attempts')}", f"last status: {s.get('last_status') or s.get('last_error')}"]
        if s.get("next_retry_at"):
            lines.append(f"next retry: {s['next_retry_at']}")
        if s.get("result"):
            lines.append(f"result: {s['result']}")
        workflow.set_current_details("\n\n".join(lines))

    @workflow.run
    async def run(self, req: RetryInput) -> dict:
        attempts = req.attempts_made
        self._show(attempts=attempts, last_status="failed", next_retry_at=None)
        retry_after = None
        while True:
            delay = retry_delay(req.schedule, attempts, retry_after, workflow.random())
            if delay is None:
                await workflow.execute_activity(
                    "give_up_delivery", args=[req.delivery_id, f"retry schedule exhausted after {attempts} attempts"],
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=ACTIVITY_RETRY)
                self._show(next_retry_at=None, result="failed: retry schedule exhausted")
                return self._state
            next_at = workflow.now() + timedelta(seconds=delay)
            self._show(next_retry_at=next_at.isoformat())
            await workflow.execute_activity(
                "schedule_next_attempt", args=[req.delivery_id, delay],
                start_to_close_timeout=timedelta(seconds=30), retry_policy=ACTIVITY_RETRY)
            await workflow.sleep(timedelta(seconds=delay), summary=f"wait before attempt {attempts + 1}")
            outcome: AttemptOutcome = await workflow.execute_activity(
                "attempt_delivery", AttemptInput(req.delivery_id, scheduled_for=workflow.now().isoformat()),
                result_type=AttemptOutcome,
                start_to_close_timeout=timedelta(seconds=60), retry_policy=ACTIVITY_RETRY,
                summary=f"attempt {attempts + 1}",
            )
            attempts = max(attempts + 1, outcome.attempt)
            self._show(attempts=attempts, last_status=outcome.status_code, last_error=outcome.error, next_retry_at=None)
            if outcome.succeeded:
                self._show(result="delivered")
                return self._state
            if outcome.endpoint_disabled:
                self._show(result="stopped: endpoint disabled" + (" (410 Gone)" if outcome.gone else ""))
                return self._state
            retry_after = outcome.retry_after
