"""Everything that crosses Temporal: workflow and activity inputs and outputs, and the
modes and states they carry.

Callers build these (``SyncRequest(...)``), never dicts, so a field name that does not exist
fails the type check instead of being dropped by the data converter at run time. Every field
added later has a default, so a running workflow's history (recorded with an older shape)
still decodes; enums are ``StrEnum`` for the same reason: on the wire they are the strings
older histories hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"  # reads every object again through the current mappings
    RECOMPUTE = "recompute"  # users recomputed from stored data (after a mapping or role change)
    # Not a request anyone queues: the pass an operator's approval of held deletions runs.
    APPLY_HELD_DELETIONS = "apply_held_deletions"
    # A SCIM directory's pushed deprovisions, settled in one batch once the pushes pause
    # (applied, or held like a pass's deletions: dirhook/scim/deprovisions.py).
    DEPROVISIONS = "deprovisions"


# The modes that read nothing from the directory.
OFFLINE_MODES = (SyncMode.RECOMPUTE, SyncMode.APPLY_HELD_DELETIONS, SyncMode.DEPROVISIONS)


class SyncState(StrEnum):
    """Where a directory's sync workflow is (its ``status`` query)."""

    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by an operator (the workflow closed as CANCELED)
    AWAITING_APPROVAL = "awaiting_approval"  # deletions held: an operator decides


class RunStatus(StrEnum):
    """A sync run's row (``sync_runs.status``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by an operator; what it committed stays


class EndpointHealth(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"  # its deliveries fail; not yet long enough to open the breaker
    CIRCUIT_OPEN = "circuit_open"  # only a probe goes out; the rest is held


# -- directory sync ------------------------------------------------------------------------------


@dataclass
class SyncRequest:
    """DirectorySyncWorkflow's input."""

    directory_id: str
    # None: the pass to run comes as the ``request_sync`` start signal (the API's
    # signal-with-start); a mode here is for starts without a signal.
    mode: SyncMode | None = SyncMode.INCREMENTAL
    delivery_task_queue: str = ""
    # Requests still queued when the previous run continued as new.
    carried: list[SyncMode] = field(default_factory=list)
    # How long a pass may go without a heartbeat before Temporal hands it to another
    # worker (one heartbeat per committed chunk of users).
    heartbeat_timeout_seconds: float = 120.0
    # A deprovisions pass waits until no new deprovision came for ``quiet`` seconds, and at
    # most ``max_wait`` seconds, so a burst is judged as one.
    deprovision_quiet_seconds: float = 10.0
    deprovision_max_wait_seconds: float = 60.0


@dataclass
class PassInput:
    directory_id: str
    mode: SyncMode
    workflow_id: str


@dataclass
class PassSummary:
    sync_run_id: int
    full: bool
    users_read: int
    groups_read: int
    events_total: int
    events: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # deletions awaiting approval, by kind
    users_written: int = 0
    resumed_after_users: int = 0  # users a previous attempt of this pass had committed

    def progress(self) -> dict[str, Any]:
        """The finished pass as a progress report (what live progress ends at)."""
        return {
            "stage": "done",
            "users_read": self.users_read,
            "groups_read": self.groups_read,
            "users_written": self.users_written,
            "events": self.events_total,
            **({"resumed_after_users": self.resumed_after_users} if self.resumed_after_users else {}),
        }


@dataclass
class SyncStatus:
    """DirectorySyncWorkflow's ``status`` query and result."""

    directory_id: str
    state: SyncState = SyncState.STARTING
    mode: SyncMode | None = None
    passes: int = 0
    queued: list[SyncMode] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    last_result: PassSummary | None = None
    error: str | None = None


@dataclass
class DirectoryInput:
    """The input of the workflows and activities that need only a directory: the LDAP
    listener and the scheduled trigger. (Before 0.3 they took the id as a bare string,
    which their workflows still accept from older histories and schedules.)"""

    directory_id: str


# What the listener activity returns when its hour is up: the workflow continues as new.
# Any other outcome says why listening stopped for good (shown in the Temporal UI).
LISTEN_RENEW = "renew"


def directory_id_of(req: DirectoryInput | str) -> str:
    return req if isinstance(req, str) else req.directory_id


# -- delivery ------------------------------------------------------------------------------------


@dataclass
class DispatchInput:
    endpoint_id: str
    # Epoch seconds of the next send the endpoint's rate limit allows, carried between batches.
    next_slot: float | None = None


@dataclass
class BatchResult:
    """One run of an endpoint's dispatch activity."""

    sent: int
    failed: int
    remaining: bool  # stopped at its time budget with more to send
    next_slot: float | None = None
    retry_in: float | None = None  # seconds until the next retry (or breaker probe) is due
    blocked: str | None = None  # why nothing more can go out now, for the Temporal UI
    health: EndpointHealth = EndpointHealth.HEALTHY
    held: int = 0  # deliveries the open breaker holds


@dataclass
class DispatchCounts:
    """EndpointDispatchWorkflow's ``counts`` query and result: what this run has done."""

    sent: int = 0
    failed: int = 0
    blocked: str | None = None
    health: EndpointHealth = EndpointHealth.HEALTHY
    held: int = 0
