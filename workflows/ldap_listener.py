"""`ldaplisten/<directory>`: holds the directory server's persistent search for one
directory (OpenLDAP: syncrepl's refreshAndPersist; Active Directory: change notifications)
and asks for an incremental pass whenever the server announces a change, so a change
reaches receivers within a fraction of a second. The pass itself reads the changes with
the stored cursor (syncrepl or DirSync cookie): a restarted listener re-emits nothing.

One long activity (heartbeating) per run; the run continues as new when it returns, so the
history stays small. A server without syncrepl ends the workflow: the schedule's polling
is then the directory's only path (so does one without syncrepl or notifications).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.sync import SyncActivities
    from dirhook.contracts import LISTEN_RENEW, DirectoryInput, directory_id_of
    from dirhook.errors import NON_RETRYABLE


@workflow.defn
class LdapListenerWorkflow:
    @workflow.run
    async def run(self, req: DirectoryInput | str) -> str:
        # A bare id: a run continued as new by a worker before 0.3.
        directory_id = directory_id_of(req)
        workflow.set_current_details(f"listening to directory `{directory_id}` for changes")
        outcome = await workflow.execute_activity_method(
            SyncActivities.listen_for_changes,
            DirectoryInput(directory_id),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=2),
                backoff_coefficient=2,
                maximum_interval=timedelta(minutes=1),
                non_retryable_error_types=NON_RETRYABLE,
            ),
            summary="hold the persistent search",
        )
        if outcome == LISTEN_RENEW:
            workflow.continue_as_new(DirectoryInput(directory_id))
        workflow.set_current_details(f"stopped: {outcome}")
        return outcome
