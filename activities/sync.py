"""Sync activities: one pass of one directory, and waking delivery afterwards."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import CancelledError

from dirhook import sync_control
from dirhook.config import Settings
from dirhook.contracts import (
    LISTEN_RENEW,
    OFFLINE_MODES,
    DirectoryInput,
    PassInput,
    PassSummary,
    RunStatus,
    SyncMode,
    directory_id_of,
)
from dirhook.db.schema import Directory, HeldDeletion, SyncRun, rowcount, utcnow
from dirhook.directory_lock import DirectoryLocks
from dirhook.errors import DirectoryNotFound, DirhookError, as_application_error
from dirhook.metrics import SYNC_OBJECTS_READ, SYNC_PASS_DURATION
from dirhook.providers.base import DirectorySource
from dirhook.providers.factory import build_source, mapping_for
from dirhook.scim import deprovisions
from dirhook.sync import SyncEngine
from dirhook.sync_control import DirectoryRef, request_sync
from dirhook.temporal import wake_dispatcher

log = logging.getLogger(__name__)


def _last_progress(details: Sequence[Any]) -> int:
    """The users a previous attempt had read and committed, from its last heartbeat (0 if none)."""
    for detail in reversed(details or ()):
        if isinstance(detail, dict) and isinstance(users := detail.get("users_read"), int):
            return users
    return 0


class SyncActivities:
    def __init__(
        self, sessions: sessionmaker[Session], settings: Settings, client: Client, loop: asyncio.AbstractEventLoop
    ):
        self.sessions = sessions
        self.settings = settings
        self.client = client
        self.loop = loop  # the worker's loop, for signals sent from the activity thread
        self.locks = DirectoryLocks(settings.sqlalchemy_url)

    @activity.defn(name="run_sync_pass")
    def run_pass(self, req: PassInput) -> PassSummary:
        """One pass, holding its directory (one writer per directory: a SCIM write, another
        replica's recompute or a deletion decision waits, and this waits for them), from
        reading the stored state and the source to the last commit."""
        info = activity.info()
        last = list(info.heartbeat_details)  # kept while waiting: a retry reads how far a pass got
        with self.locks.hold(req.directory_id, None, f"pass:{req.mode}", waiting=lambda: activity.heartbeat(*last)):
            return self._run_pass(req)

    def _run_pass(self, req: PassInput) -> PassSummary:
        info = activity.info()
        # A retried attempt: what the last one heartbeated is how far it got. LDAP cannot
        # resume a paged search on a new connection, so this attempt reads again from the
        # start, but what that attempt committed compares equal and is neither written nor
        # sent again (PassResult.users_written).
        resumed = _last_progress(info.heartbeat_details)
        with self.sessions.begin() as s:
            if info.attempt > 1:
                # The attempt before stopped without finishing (its worker was lost, or it
                # timed out): its run is over, whatever its row still says.
                s.execute(
                    update(SyncRun)
                    .where(
                        SyncRun.workflow_id == req.workflow_id,
                        SyncRun.run_id == info.workflow_run_id,
                        SyncRun.status == RunStatus.RUNNING,
                    )
                    .values(
                        status=RunStatus.FAILED,
                        finished_at=utcnow(),
                        error=f"attempt {info.attempt - 1} stopped without finishing; attempt {info.attempt} took over",
                    )
                )
            directory = s.get(Directory, req.directory_id)
            if directory is None:
                raise as_application_error(DirectoryNotFound(f"directory {req.directory_id} does not exist"))
            run = SyncRun(
                directory_id=directory.id,
                workflow_id=req.workflow_id,
                run_id=info.workflow_run_id,
                mode=req.mode,
                status=RunStatus.RUNNING,
                started_at=utcnow(),
            )
            s.add(run)
            s.flush()
            run_id = run.id
            cursor, provider = directory.cursor, directory.provider
            recompute = req.mode in OFFLINE_MODES
            thresholds = (  # 0 is a threshold too ("hold every deletion"): only None means the default
                self.settings.deletion_threshold_count
                if directory.deletion_threshold_count is None
                else directory.deletion_threshold_count,
                self.settings.deletion_threshold_percent
                if directory.deletion_threshold_percent is None
                else directory.deletion_threshold_percent,
            )
            source: DirectorySource | None = None
            if recompute:
                mapping: Mapping[str, Any] = mapping_for(directory)
            else:
                source = build_source(directory, self.settings, self.sessions)
                mapping = source.mapping

        last_write = 0.0
        started = time.monotonic()

        def on_progress(progress: dict[str, Any]) -> None:
            # Progress goes to the heartbeat (the UI's pending activity shows it, and a
            # retried attempt reads it) and, at most once a second, to the run's row (the
            # API's live view): never into the workflow's history, which a signal a second
            # would grow for the whole length of a long pass.
            nonlocal last_write
            if resumed:
                progress = {**progress, "resumed_after_users": resumed}
            activity.heartbeat(progress)
            now = time.monotonic()
            if now - last_write >= 1.0 or progress.get("stage") == "done":
                last_write = now
                with self.sessions.begin() as s:
                    s.execute(update(SyncRun).where(SyncRun.id == run_id).values(counts={"progress": progress}))

        woken: dict[str, float] = {}

        def on_commit(endpoint_ids: set[str]) -> None:
            # Start delivery while the pass goes on: wake each endpoint's dispatcher at most
            # every 2 s (the workflow wakes them all again when the pass ends).
            now = time.monotonic()
            for endpoint_id in sorted(endpoint_ids):
                if now - woken.get(endpoint_id, -10.0) < 2.0:
                    continue
                woken[endpoint_id] = now
                fut = asyncio.run_coroutine_threadsafe(
                    wake_dispatcher(self.client, self.settings, endpoint_id), self.loop
                )
                try:
                    fut.result(timeout=10)
                except Exception:  # the end-of-pass wake-up covers it
                    log.warning(
                        "could not wake the dispatcher of %s",
                        endpoint_id,
                        exc_info=True,
                        extra={"endpoint_id": endpoint_id},
                    )

        try:
            engine = self._engine(req.directory_id, mapping, thresholds, on_progress, on_commit)
            if req.mode == SyncMode.DEPROVISIONS:
                result = deprovisions.settle(
                    self.sessions,
                    req.directory_id,
                    thresholds,
                    self.settings.scim_deprovision_window_seconds,
                    engine.run,
                )
            elif req.mode == SyncMode.APPLY_HELD_DELETIONS:
                result = engine.apply_held_deletions()
                if held := deprovisions.held_ids(self.sessions, req.directory_id):
                    result = result.absorb(deprovisions.apply(self.sessions, req.directory_id, held, engine.run))
            elif recompute:
                result = engine.recompute()
            else:
                assert source is not None  # built above for every mode that reads the directory
                source.connect()
                result = engine.run(source.changes(cursor, full=req.mode == SyncMode.FULL))
        except DirhookError as exc:
            SYNC_PASS_DURATION.labels(provider, req.mode, RunStatus.FAILED).observe(time.monotonic() - started)
            self._finish(run_id, RunStatus.FAILED, str(exc), {})
            log.warning(
                "sync of %s failed: %s",
                req.directory_id,
                exc,
                extra={"directory_id": req.directory_id, "workflow_id": req.workflow_id},
            )
            raise as_application_error(exc) from None
        except CancelledError:
            # An operator stopped it: the batches it committed stay (cursors with them), a
            # full pass's deletions, decided only at its end, were not made.
            SYNC_PASS_DURATION.labels(provider, req.mode, RunStatus.CANCELLED).observe(time.monotonic() - started)
            self._finish(run_id, RunStatus.CANCELLED, "cancelled by an operator", {})
            raise
        except Exception as exc:
            SYNC_PASS_DURATION.labels(provider, req.mode, RunStatus.FAILED).observe(time.monotonic() - started)
            self._finish(run_id, RunStatus.FAILED, f"{type(exc).__name__}: {exc}", {})
            raise
        finally:
            if source is not None:
                source.close()
        counts = result.as_dict()
        if resumed:
            counts["resumed_after_users"] = resumed
        self._finish(run_id, RunStatus.SUCCEEDED, None, counts)
        SYNC_PASS_DURATION.labels(provider, req.mode, RunStatus.SUCCEEDED).observe(time.monotonic() - started)
        SYNC_OBJECTS_READ.labels(provider, "user").inc(result.users_read)
        SYNC_OBJECTS_READ.labels(provider, "group").inc(result.groups_read)
        log.info(
            "sync of %s (%s) committed %d events",
            req.directory_id,
            provider,
            result.events_total,
            extra={"directory_id": req.directory_id, "workflow_id": req.workflow_id},
        )
        return PassSummary(
            sync_run_id=run_id,
            full=result.full,
            users_read=result.users_read,
            groups_read=result.groups_read,
            users_written=result.users_written,
            resumed_after_users=resumed,
            events_total=result.events_total,
            events=dict(result.events),
            warnings=list(result.warnings),
            held=dict(result.held),
        )

    def _engine(
        self,
        directory_id: str,
        mapping: Mapping[str, Any],
        thresholds: tuple[int, float],
        on_progress: Callable[[dict[str, Any]], None],
        on_commit: Callable[[set[str]], None],
    ) -> SyncEngine:
        return SyncEngine(
            self.sessions,
            directory_id,
            mapping,
            chunk_size=self.settings.sync_chunk_size,
            on_progress=on_progress,
            max_payload_bytes=self.settings.max_payload_bytes,
            raw_attributes_max_bytes=self.settings.raw_attributes_max_bytes,
            deletion_threshold=thresholds,
            on_commit=on_commit,
        )

    @activity.defn(name="listen_for_changes")
    def listen_for_changes(self, req: DirectoryInput | str) -> str:
        """Holds the LDAP server's persistent search (syncrepl's refreshAndPersist on
        OpenLDAP, change notifications on Active Directory) and requests an incremental
        pass per burst of changes (50 ms), for at most an hour a run."""
        from dirhook.providers.ldap import LdapSource

        directory_id = directory_id_of(req)  # a bare id: scheduled by a worker before 0.3
        with self.sessions() as s:
            directory = s.get(Directory, directory_id)
            if directory is None:
                raise as_application_error(DirectoryNotFound(f"directory {directory_id} does not exist"))
            if directory.provider != "ldap":
                return f"a {directory.provider} directory has no LDAP listener"
            source = build_source(directory, self.settings, self.sessions)
            ref = DirectoryRef(directory.id, directory.organization_id, directory.name, directory.provider)
            cursor = directory.cursor
        if not isinstance(source, LdapSource):
            return "not an LDAP source"
        active_directory = source.config.flavour == "active_directory"
        cannot = (
            "the server does not offer change notifications"
            if active_directory
            else "the server does not offer syncrepl"
        ) + ": incremental passes poll on the schedule"
        started = time.monotonic()
        # Listen only once a pass has stored a cursor: without a syncrepl cookie the server
        # would first send the whole directory, and the pass it triggers would run before
        # anyone (an endpoint) is there to hear it. The first pass is the operator's.
        while not cursor:
            activity.heartbeat()
            if activity.is_cancelled() or time.monotonic() - started > 3600:
                return LISTEN_RENEW
            time.sleep(1.0)
            with self.sessions() as s:
                directory = s.get(Directory, directory_id)
                if directory is None:
                    return "the directory is gone"
                cursor = directory.cursor
        cookie = cursor.get("sync_users")
        if not cookie and not active_directory:  # a pass ran without syncrepl
            return cannot
        try:
            source.connect()
            if not source.can_listen:
                return cannot
            last_request, pending = 0.0, False

            def on_change() -> None:
                nonlocal pending
                pending = True

            def keep_going() -> bool:
                nonlocal pending, last_request
                activity.heartbeat()
                if activity.is_cancelled():
                    return False
                now = time.monotonic()
                if pending and now - last_request >= 0.05:
                    pending, last_request = False, now
                    fut = asyncio.run_coroutine_threadsafe(
                        request_sync(self.client, self.settings, ref, SyncMode.INCREMENTAL), self.loop
                    )
                    try:
                        fut.result(timeout=10)
                    except Exception:  # the schedule's pass catches up
                        log.warning(
                            "could not request a pass of %s",
                            directory_id,
                            exc_info=True,
                            extra={"directory_id": directory_id},
                        )
                return now - started < 3600

            source.listen(cookie, on_change, keep_going)
            return LISTEN_RENEW
        except DirhookError as exc:
            raise as_application_error(exc) from None
        finally:
            source.close()

    @activity.defn(name="request_scheduled_sync")
    async def request_scheduled_sync(self, req: DirectoryInput | str) -> str:
        """The schedule's tick: queue an incremental pass (or, if the directory is gone, drop the schedule)."""
        directory_id = directory_id_of(req)  # a bare id: scheduled by a worker before 0.3

        def load() -> DirectoryRef | None:
            with self.sessions() as s:
                d = s.get(Directory, directory_id)
                return DirectoryRef(d.id, d.organization_id, d.name, d.provider) if d else None

        ref = await asyncio.to_thread(load)
        if ref is None:
            await sync_control.delete_schedule(self.client, directory_id)
            return "directory deleted: schedule removed"
        handle = await sync_control.request_sync(self.client, self.settings, ref, SyncMode.INCREMENTAL)
        return f"requested an incremental pass of {handle.id}"

    @activity.defn(name="discard_held_deletions")
    def discard_held_deletions(self, directory_id: str) -> int:
        """An operator rejected: forget a pass's held deletions (the next pass finds them
        again), and restore the held deprovisions an IdP pushed as they were."""
        with self.locks.hold(directory_id, None, "reject_deletions", waiting=activity.heartbeat):
            with self.sessions.begin() as s:
                forgotten = rowcount(s.execute(delete(HeldDeletion).where(HeldDeletion.directory_id == directory_id)))
            return forgotten + deprovisions.restore(self.sessions, directory_id)

    def _finish(self, run_id: int, status: str, error: str | None, counts: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            run = s.get(SyncRun, run_id)
            assert run is not None, run_id  # written by this pass
            run.status, run.error, run.counts, run.finished_at = status, error, counts, utcnow()
