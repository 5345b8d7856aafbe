"""ScheduledSyncWorkflow: what a directory's Temporal Schedule starts.

Schedules give each run a workflow ID of their own, so the schedule cannot start
``dirsync/<directory>`` itself; this one-activity workflow asks it for an incremental pass
the same way the API does (signal-with-start), so scheduled and requested passes queue
behind each other and never overlap.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy


@workflow.defn
class ScheduledSyncWorkflow:
    @workflow.run
    async def run(self, directory_id: str) -> str:
        return await workflow.execute_activity(
            "request_scheduled_sync", directory_id, result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10)),
            summary="request an incremental pass")
