"""A directory's source health, apart from its sync workflow's state: a recompute (after a
role or mapping change) succeeds from stored data whatever the source does, so a directory
pointed at a wrong port showed `succeeded` though it had never been read once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dirhook.api.schemas import SourceHealthOut
from dirhook.contracts import OFFLINE_MODES, RunStatus
from dirhook.db.schema import SyncRun


def source_health_of(s: Session, directory_id: str) -> SourceHealthOut:
    """From the directory's runs that read its source (not recomputes, decisions, deprovisions)."""
    reads = (
        select(SyncRun)
        .where(SyncRun.directory_id == directory_id, SyncRun.mode.not_in([str(m) for m in OFFLINE_MODES]))
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    return source_health(
        s.scalars(reads.where(SyncRun.status == RunStatus.SUCCEEDED)).first(),
        s.scalars(reads.where(SyncRun.status == RunStatus.FAILED)).first(),
    )


def source_health(last_success: SyncRun | None, last_failure: SyncRun | None) -> SourceHealthOut:
    """From the latest succeeded and failed passes that read the source."""
    failing = last_failure is not None and (last_success is None or last_failure.id > last_success.id)
    return SourceHealthOut(
        state="failing" if failing else "healthy" if last_success is not None else "never_synced",
        last_success_at=last_success.finished_at if last_success else None,
        last_error=last_failure.error if failing and last_failure else None,
        last_error_at=(last_failure.finished_at or last_failure.started_at) if failing and last_failure else None,
    )
