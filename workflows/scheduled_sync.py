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

with workflow.unsafe.imports_passed_through():
    from activities.sync import SyncActivities
    from dirhook.contracts import DirectoryInput, directory_id_of


@workflow.defn
class ScheduledSyncWorkflow:
    @workflow.run
    async def run(self, req: DirectoryInput | str) -> str:
        # A bare id: the action of a schedule created before 0.3.
        directory_id = directory_id_of(req)
        return await workflow.execute_activity_method(
            SyncActivities.request_scheduled_sync,
            DirectoryInput(directory_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10)),
            summary="request an incremental pass",
        )
