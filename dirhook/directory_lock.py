"""One writer per directory, across processes and machines.

Every change to a directory's stored state — sync passes of every mode, a SCIM write with
its projection, recomputes, deletion decisions — runs while holding that directory's lock,
from reading the stored state to its last commit, so a pass and a push never interleave
and replicas never commit out of order.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
  its own, outside the pool the writer uses; the server releases it if the process dies.
- SQLite (one machine by nature): ``flock`` on a file beside the database; the kernel
  releases it if the process dies. Separate opens exclude each other, threads included.

Hand-written rather than a library: the lock spans many transactions of one pass, which
neither SQLAlchemy nor SQLite's own locking (one transaction at a time) offers.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from dirhook.db.engine import normalize_url
from dirhook.metrics import DIRECTORY_LOCK_WAIT

# Releases a lock: ``release(acquired=False)`` frees what trying took without holding it.
Release = Callable[..., None]

POLL_FIRST, POLL_MAX = 0.01, 0.1  # seconds between tries, growing


class DirectoryBusy(Exception):
    """Another writer held the directory for longer than this caller could wait."""

    def __init__(self, directory_id: str, waited: float):
        super().__init__(
            f"directory {directory_id} is busy with another change (a sync pass or a write); "
            f"waited {waited:.1f} s: try again shortly"
        )
        self.directory_id = directory_id
        self.retry_after = 1


def _advisory_key(directory_id: str) -> int:
    return int.from_bytes(hashlib.sha256(directory_id.encode()).digest()[:8], "big", signed=True)


class DirectoryLocks:
    def __init__(self, database_url: str):
        url = normalize_url(database_url)
        self.postgres = url.startswith("postgresql")
        self._engine = create_engine(url, poolclass=NullPool) if self.postgres else None
        database = make_url(url).database if not self.postgres else None
        # An in-memory SQLite database lives in one process: a process-local lock is enough.
        self._folder = Path(f"{database}.locks") if database and database != ":memory:" else None
        self._local: dict[str, threading.Lock] = {}
        self._local_guard = threading.Lock()

    @contextmanager
    def hold(
        self, directory_id: str, wait_seconds: float | None, caller: str, waiting: Callable[[], None] = lambda: None
    ) -> Iterator[float]:
        """Hold the directory's lock for the block; yields how long it waited. ``wait_seconds``
        None waits as long as it takes (``waiting`` is called between tries: heartbeats);
        otherwise DirectoryBusy once that budget is spent."""
        started = time.monotonic()
        release = self._acquire(directory_id, started, wait_seconds, waiting)
        waited = time.monotonic() - started
        DIRECTORY_LOCK_WAIT.labels(caller).observe(waited)
        try:
            yield waited
        finally:
            release()

    @asynccontextmanager
    async def hold_async(self, directory_id: str, wait_seconds: float, caller: str) -> AsyncIterator[float]:
        """``hold`` for the event loop. Each try runs in a thread, the waits between tries on
        the loop: waiters never sit in the default thread pool (a few threads on a small
        machine), where the holder's own database work must still find one."""
        started = time.monotonic()
        try_once, release = self._locker(directory_id)
        pause = POLL_FIRST
        try:
            while not await asyncio.to_thread(try_once):
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    raise DirectoryBusy(directory_id, waited)
                await asyncio.sleep(min(pause, max(0.0, wait_seconds - waited)))
                pause = min(pause * 2, POLL_MAX)
        except BaseException:  # busy, the database gone, or the request cancelled: hold nothing
            await asyncio.to_thread(release, acquired=False)
            raise
        waited = time.monotonic() - started
        DIRECTORY_LOCK_WAIT.labels(caller).observe(waited)
        try:
            yield waited
        finally:
            await asyncio.to_thread(release)

    def _locker(self, directory_id: str) -> tuple[Callable[[], bool], Release]:
        if self.postgres:
            return self._postgres(directory_id)
        if self._folder is not None:
            return self._file(directory_id)
        return self._process(directory_id)

    def _acquire(
        self, directory_id: str, started: float, budget: float | None, waiting: Callable[[], None]
    ) -> Callable[[], None]:
        try_once, release = self._locker(directory_id)
        pause = POLL_FIRST
        try:
            while not try_once():
                waited = time.monotonic() - started
                if budget is not None and waited >= budget:
                    raise DirectoryBusy(directory_id, waited)
                waiting()
                time.sleep(pause if budget is None else min(pause, max(0.0, budget - waited)))
                pause = min(pause * 2, POLL_MAX)
        except BaseException:  # busy, the database gone, or the waiter cancelled: hold nothing
            release(acquired=False)
            raise
        return release

    def _postgres(self, directory_id: str) -> tuple[Callable[[], bool], Release]:
        assert self._engine is not None
        conn = self._engine.connect()
        key = _advisory_key(directory_id)

        def try_once() -> bool:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # no transaction left open while the lock is held
            return bool(got)

        def release(acquired: bool = True) -> None:
            try:
                if acquired:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            finally:
                conn.close()

        return try_once, release

    def _file(self, directory_id: str) -> tuple[Callable[[], bool], Release]:
        assert self._folder is not None
        self._folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in directory_id)
        fd = os.open(self._folder / f"{safe}.lock", os.O_RDWR | os.O_CREAT, 0o600)

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        def release(acquired: bool = True) -> None:
            try:
                if acquired:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

        return try_once, release

    def _process(self, directory_id: str) -> tuple[Callable[[], bool], Release]:
        with self._local_guard:
            lock = self._local.setdefault(directory_id, threading.Lock())

        def release(acquired: bool = True) -> None:
            if acquired:
                lock.release()

        return (lambda: lock.acquire(blocking=False)), release

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
