"""DeliverySweepWorkflow: the safety net under the wake-ups.

Every commit wakes its endpoints' dispatchers, but a wake-up can be lost (Temporal was
unreachable, the process died right after its commit). The Temporal Schedule
``delivery-sweep`` runs this every minute: it wakes the dispatcher of every endpoint with a
delivery that has waited more than a few seconds, so nothing committed waits longer than
one interval for a dispatcher.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities

# Deliveries younger than this are left to the wake-up their commit sent.
SETTLE_SECONDS = 5.0


@workflow.defn
class DeliverySweepWorkflow:
    @workflow.run
    async def run(self) -> int:
        woken = await workflow.execute_activity_method(
            DeliveryActivities.wake_dispatchers,
            SETTLE_SECONDS,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="wake dispatchers with waiting deliveries",
        )
        workflow.set_current_details(f"woke {woken} endpoint dispatcher(s)")
        return woken
