"""A SCIM write, projected: the sync engine applies the change to users, groups and the
outbox (one short incremental pass), then the endpoints with new deliveries are woken
at once — delivery does not wait for any polling interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dirhook import sync_control
from dirhook import temporal as t
from dirhook.config import Settings
from dirhook.contracts import SyncMode
from dirhook.db.schema import Directory
from dirhook.providers.base import Changes
from dirhook.providers.factory import mapping_for
from dirhook.sync import SyncEngine
from dirhook.sync_control import DirectoryRef

log = logging.getLogger(__name__)


def make_projector(
    sessions: sessionmaker[Session], settings: Settings, temporal: Callable[[], Awaitable[Client]]
) -> Callable[[str, Changes], Awaitable[None]]:
    def apply(directory_id: str, changes: Changes) -> set[str]:
        touched: set[str] = set()
        with sessions() as s:
            directory = s.get(Directory, directory_id)
            if directory is None:  # deleted while the request ran: nothing to project
                return touched
            mapping = mapping_for(directory)
        engine = SyncEngine(
            sessions,
            directory_id,
            mapping,
            chunk_size=settings.sync_chunk_size,
            max_payload_bytes=settings.max_payload_bytes,
            raw_attributes_max_bytes=settings.raw_attributes_max_bytes,
            deletion_threshold=(settings.deletion_threshold_count, settings.deletion_threshold_percent),
            on_commit=touched.update,
        )
        engine.run(changes)
        return touched

    async def project(directory_id: str, changes: Changes) -> None:
        touched = await asyncio.to_thread(apply, directory_id, changes)
        if not touched:
            return
        try:
            client = await temporal()
            await asyncio.gather(*(t.wake_dispatcher(client, settings, ep) for ep in touched))
        except Exception:  # the events are stored: the next wake of these endpoints sends them
            log.warning(
                "could not wake the dispatchers of %s",
                sorted(touched),
                exc_info=True,
                extra={"directory_id": directory_id},
            )

    return project


def make_settler(
    sessions: sessionmaker[Session], settings: Settings, temporal: Callable[[], Awaitable[Client]]
) -> Callable[[str], Awaitable[None]]:
    """Asks a directory's sync workflow to settle its pending deprovisions (a signal that
    collapses with others into one pass after the pushes pause: dirhook/scim/deprovisions.py)."""

    def load(directory_id: str) -> DirectoryRef | None:
        with sessions() as s:
            d = s.get(Directory, directory_id)
            return DirectoryRef(d.id, d.organization_id, d.name, d.provider) if d else None

    async def settle(directory_id: str) -> None:
        ref = await asyncio.to_thread(load, directory_id)
        if ref is None:
            return
        try:
            await sync_control.request_sync(await temporal(), settings, ref, SyncMode.DEPROVISIONS)
        except Exception:  # recorded pending: the directory's next deprovision or pass settles it
            log.warning(
                "could not ask for the deprovisions to be settled", exc_info=True, extra={"directory_id": directory_id}
            )

    return settle
