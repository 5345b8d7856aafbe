"""DirectorySyncWorkflow: sync passes of one directory, never two at once.

Its workflow ID is ``dirsync/<directory_id>`` and callers start it with signal-with-start:
a request while a pass runs is a signal to the running workflow, which runs one more
pass afterwards. Concurrent requests thus collapse into at most one queued pass (a full
request wins over an incremental one), and two passes of a directory never overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities
    from activities.sync import SyncActivities
    from dirhook.contracts import PassInput, PassSummary, SyncMode, SyncRequest, SyncState, SyncStatus
    from dirhook.errors import NON_RETRYABLE

# Passes one workflow run performs before continuing as new, to keep its history short.
MAX_PASSES_PER_RUN = 50
# Re-exported: callers import the contracts of this workflow from here too.
__all__ = ["DirectorySyncWorkflow", "PassSummary", "SyncRequest", "SyncStatus"]


@workflow.defn
class DirectorySyncWorkflow:
    def __init__(self) -> None:
        self._queued: set[SyncMode] = set()
        self._absorbed: set[SyncMode] = set()  # requests the running full pass stands for
        self._status: SyncStatus | None = None
        self._decision: bool | None = None
        self._decision_outcome: str | None = None
        self._deprovisions_asked = 0  # deprovision requests received (they collapse in _queued)

    # -- deletion protection: an operator approves or rejects held deletions -------------------
    @workflow.update
    async def decide_deletions(self, approve: bool) -> str:
        """Approve (delete them, with their events) or reject (keep the objects) the deletions
        this pass held back. Returns what was done."""
        self._decision, self._decision_outcome = approve, None
        await workflow.wait_condition(lambda: self._decision_outcome is not None)
        # Set by _await_decision before the condition holds (mypy still sees the None above).
        return cast(str, self._decision_outcome)

    @decide_deletions.validator
    def _validate_decision(self, approve: bool) -> None:
        if self._status is None or self._status.state != SyncState.AWAITING_APPROVAL:
            raise ValueError("no deletions are awaiting approval for this directory")

    # No approve/reject *signals*: a signal is fire-and-forget and unvalidated, so anyone who
    # can reach Temporal could approve a mass deletion unseen (issue 14, finding 1). The
    # validated update above is the only way to decide; the recorded histories use it.

    @workflow.signal
    def request_sync(self, mode: SyncMode) -> None:
        """incremental | full | recompute (users recomputed from stored data, after a change
        of mappings or roles). Requests made while a pass runs collapse into the next one."""
        self._queued.add(mode)
        if mode == SyncMode.DEPROVISIONS:
            self._deprovisions_asked += 1
        if self._status:
            self._status.queued = sorted(self._queued)

    def _next_mode(self) -> SyncMode | None:
        # A full pass reads every user again through the current mappings: it does all a
        # recompute or an incremental pass would.
        if SyncMode.FULL in self._queued:
            # Pushed deprovisions are not the directory's to read: they stay queued.
            self._absorbed = self._queued - {SyncMode.FULL, SyncMode.DEPROVISIONS}
            self._queued -= self._absorbed | {SyncMode.FULL}
            return SyncMode.FULL
        for mode in (SyncMode.RECOMPUTE, SyncMode.INCREMENTAL, SyncMode.DEPROVISIONS):
            if mode in self._queued:
                self._queued.discard(mode)
                return mode
        return None

    @workflow.signal
    def report_progress(self, progress: dict[str, Any]) -> None:
        """Kept for passes started by workers before 0.2, which signalled their progress."""
        if self._status is None:
            return
        self._status.progress = progress
        workflow.set_current_details(self._details())

    @workflow.query
    def status(self) -> SyncStatus | None:
        return self._status

    @property
    def _s(self) -> SyncStatus:
        assert self._status is not None, "set first thing in run()"
        return self._status

    def _details(self) -> str:
        s = self._s
        p = s.progress
        lines = [f"**{s.state}** — {s.mode or '?'} pass #{s.passes} of directory `{s.directory_id}`"]
        if p:
            lines.append(
                f"stage: {p.get('stage')}, users read: {p.get('users_read', 0)}, "
                f"written: {p.get('users_written', 0)}, groups read: {p.get('groups_read', 0)}, "
                f"events: {p.get('events', 0)}"
            )
            if p.get("resumed_after_users"):
                lines.append(
                    f"resumed: the previous attempt had committed {p['resumed_after_users']} users; "
                    "they are read again and, unchanged, neither written nor sent again"
                )
        if s.queued:
            lines.append(f"queued next: {', '.join(s.queued)}")
        if s.error:
            lines.append(f"error: {s.error}")
        return "\n\n".join(lines)

    async def _await_decision(self, req: SyncRequest) -> int:
        """Hold here, visibly, until an operator decides; returns the events the decision made."""
        s = self._s
        assert s.last_result is not None, "a pass held these deletions"
        held = ", ".join(f"{n} {kind}" for kind, n in sorted(s.last_result.held.items()))
        s.state = SyncState.AWAITING_APPROVAL
        s.error = f"deletions held for approval: {held} are gone from the source"
        workflow.set_current_details(self._details())
        await workflow.wait_condition(lambda: self._decision is not None)
        approve, self._decision = self._decision, None
        if approve:
            applied = await workflow.execute_activity_method(
                SyncActivities.run_pass,
                PassInput(req.directory_id, SyncMode.APPLY_HELD_DELETIONS, workflow.info().workflow_id),
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="apply approved deletions",
            )
            self._decision_outcome = f"approved: deleted {held} ({applied.events_total} events)"
            events = applied.events_total
        else:
            await workflow.execute_activity_method(
                SyncActivities.discard_held_deletions,
                req.directory_id,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="discard rejected deletions",
            )
            self._decision_outcome = f"rejected: kept {held}"
            events = 0
        s.state, s.error = SyncState.SUCCEEDED, None
        s.progress = {**s.progress, "deletions": self._decision_outcome}
        workflow.set_current_details(self._details())
        return events

    def _another_deprovision(self) -> Callable[[], bool]:
        """Whether a deprovision request arrives after this call."""
        seen = self._deprovisions_asked
        return lambda: self._deprovisions_asked != seen

    async def _settle_deprovisions(self, req: SyncRequest) -> None:
        """Wait, visibly, until the IdP's deprovisions pause, so a burst is judged as one."""
        s = self._s
        s.progress = {"stage": "waiting for the IdP's deprovisions to pause"}
        workflow.set_current_details(self._details())
        started = workflow.now()
        while True:
            left = req.deprovision_max_wait_seconds - (workflow.now() - started).total_seconds()
            if left <= 0:
                break
            try:
                await workflow.wait_condition(
                    self._another_deprovision(),
                    timeout=timedelta(seconds=min(req.deprovision_quiet_seconds, left)),
                )
            except TimeoutError:
                break
        self._queued.discard(SyncMode.DEPROVISIONS)  # this pass settles those too
        s.queued = sorted(self._queued)

    @workflow.run
    async def run(self, req: SyncRequest) -> SyncStatus:
        self._status = SyncStatus(directory_id=req.directory_id)
        for carried in req.carried:
            self.request_sync(carried)
        if req.mode is not None:
            self.request_sync(req.mode)
        elif not self._queued:
            try:
                await workflow.wait_condition(lambda: bool(self._queued), timeout=timedelta(minutes=1))
            except TimeoutError:
                pass  # started without a request: nothing to do
        failed: ApplicationError | None = None  # a pass that failed with requests queued behind it
        failed_message = ""
        while (mode := self._next_mode()) is not None:
            s = self._s
            s.state, s.mode, s.queued, s.progress = SyncState.RUNNING, mode, sorted(self._queued), {}
            s.passes += 1
            workflow.set_current_details(self._details())
            if mode == SyncMode.DEPROVISIONS:
                await self._settle_deprovisions(req)
            try:
                s.last_result = await workflow.execute_activity_method(
                    SyncActivities.run_pass,
                    PassInput(req.directory_id, mode, workflow.info().workflow_id),
                    start_to_close_timeout=timedelta(hours=6),
                    heartbeat_timeout=timedelta(seconds=req.heartbeat_timeout_seconds),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_attempts=3,
                        non_retryable_error_types=NON_RETRYABLE,
                    ),
                    summary=f"{mode} pass",
                    # A cancelled workflow (`dirhook sync --cancel`, the UI's "Request
                    # cancellation") closes once the pass has stopped and let go of its
                    # directory, not while it still writes.
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            except ActivityError as err:
                # An operator cancelled the workflow: it closes CANCELED, also when the pass
                # ended in an error of its own before it heard (a bind that never answers
                # cannot heartbeat, so its attempt fails instead of stopping).
                cancelled = asyncio.current_task()
                if is_cancelled_exception(err) or (cancelled is not None and cancelled.cancelling()):
                    s.state, s.error = SyncState.CANCELLED, "cancelled by an operator"
                    workflow.set_current_details(self._details())
                    raise asyncio.CancelledError() from None
                cause = err.cause
                message = getattr(cause, "message", None) or str(cause or err)
                s.state, s.error = SyncState.FAILED, message
                workflow.set_current_details(self._details())
                failure = ApplicationError(
                    f"sync of {req.directory_id} failed: {message}",
                    type=getattr(cause, "type", None) or "SyncFailed",
                    non_retryable=True,
                )
                # A recompute this full pass absorbed needs no source: it still runs.
                if mode == SyncMode.FULL and SyncMode.RECOMPUTE in self._absorbed:
                    self._queued.add(SyncMode.RECOMPUTE)
                if not self._queued:
                    raise failure from None
                # What was asked for behind the failed pass still runs (a recompute after a
                # mapping change must not be lost to an unreachable source); the workflow
                # ends failed afterwards all the same, unless a later pass read the source.
                failed, failed_message = failure, message
                continue
            failed = None if mode != SyncMode.RECOMPUTE else failed
            # The pass's progress arrives with its result (live progress goes to the activity's
            # heartbeat and the run's row, not into this history).
            s.progress = s.last_result.progress()
            s.state, s.error = SyncState.SUCCEEDED, None
            workflow.set_current_details(self._details())
            events = s.last_result.events_total
            if s.last_result.held:
                events += await self._await_decision(req)
            if events:
                await workflow.execute_activity_method(
                    DeliveryActivities.wake_dispatchers,
                    task_queue=req.delivery_task_queue or None,
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                    summary="wake delivery",
                )
            if self._queued and (s.passes >= MAX_PASSES_PER_RUN or workflow.info().is_continue_as_new_suggested()):
                workflow.continue_as_new(
                    SyncRequest(
                        req.directory_id,
                        None,
                        req.delivery_task_queue,
                        carried=sorted(self._queued),
                        heartbeat_timeout_seconds=req.heartbeat_timeout_seconds,
                        deprovision_quiet_seconds=req.deprovision_quiet_seconds,
                        deprovision_max_wait_seconds=req.deprovision_max_wait_seconds,
                    )
                )
        if failed is not None:
            s = self._s
            s.state, s.error = SyncState.FAILED, failed_message
            workflow.set_current_details(self._details())
            raise failed
        return self._status
