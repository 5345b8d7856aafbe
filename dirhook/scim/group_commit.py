"""One directory's SCIM writers in this process: turns in order, and creations committed
together.

Every write holds the directory (one writer: dirhook/directory_lock.py) and projects its
change through the sync engine. Writers take turns in arrival order; only the first polls
the directory lock, which is then handed from turn to turn while writers are queued (up
to MAX_HOLD_SECONDS, so a pass or another replica gets it between) instead of being
released and taken again.

Creations of users, the bulk of an identity provider's import, are committed as a group:
each joins a queue, and one leader at a time takes what has queued, stores it all in one
trip to a thread and projects the new users in one engine pass, in one turn. One engine
pass costs far more than the row it applies (measured: 4.6 ms for a pass of one user,
most of it the pass's own reads and commits), and every trip between the event loop and a
thread waits for the GIL, so with parallel clients those fixed costs, not the work, set
the rate. Each creation still answers only once its user is projected, and in order: a
database's group commit. Other writes (replacements, patches, groups, deletions) run in
their own turn, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

from dirhook.directory_lock import DirectoryBusy, DirectoryLocks

Item = TypeVar("Item")
Result = TypeVar("Result")

# A group is at most this many writes; the lock is handed on for at most this long.
MAX_GROUP = 100
MAX_HOLD_SECONDS = 0.25


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        directory_id: str,
        locks: DirectoryLocks,
        wait_seconds: float,
        commit_group: Callable[[list[Item]], Awaitable[list[Result | Exception]]],
    ):
        self.directory_id = directory_id
        self.locks = locks
        self.wait_seconds = wait_seconds
        # Writes a group in a turn: each item's result, or the exception that item answers.
        self.commit_group = commit_group
        # The task in its turn (a PATCH or PUT reads, applies and writes back in one turn):
        # its own nested writes do not queue again.
        self._in_turn: ContextVar[bool] = ContextVar(f"scim-writer-{directory_id}", default=False)
        self._turn = asyncio.Lock()  # FIFO: turns in arrival order
        self._queued = 0  # tasks waiting for a turn
        self._hold: AbstractAsyncContextManager[float] | None = None  # the directory lock, while held
        self._held_since = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        self._group: list[tuple[Item, asyncio.Future[Result]]] = []  # waiting for the leader
        self._leader: asyncio.Task[None] | None = None

    # -- turns --------------------------------------------------------------------------------
    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The directory held for the block, within the directory's write wait (else
        DirectoryBusy); nested turns of one task are the outer one."""
        if self._in_turn.get():
            yield
            return
        started = time.monotonic()
        self._queued += 1
        try:
            await asyncio.wait_for(self._turn.acquire(), self.wait_seconds)
        except TimeoutError:
            raise DirectoryBusy(self.directory_id, time.monotonic() - started) from None
        finally:
            self._queued -= 1
        try:
            if self._hold is None:
                hold = self.locks.hold_async(
                    self.directory_id, max(0.01, self.wait_seconds - (time.monotonic() - started)), "scim"
                )
                await hold.__aenter__()
                self._hold, self._held_since = hold, time.monotonic()
        except BaseException:
            self._turn.release()
            raise
        token = self._in_turn.set(True)
        try:
            yield
        finally:
            self._in_turn.reset(token)
            # Shielded: a writer cancelled here (its client gone) still ends its turn and,
            # if it is the last, releases the lock.
            await asyncio.shield(asyncio.ensure_future(self._end_turn()))

    async def _end_turn(self) -> None:
        try:
            if (self._queued or self._group) and time.monotonic() - self._held_since < MAX_HOLD_SECONDS:
                # The next turn takes the lock as it is. If none comes (its wait ran out, its
                # request was cancelled), the sweeper, queued behind them, releases it.
                if self._sweeper is None or self._sweeper.done():
                    self._sweeper = asyncio.ensure_future(self._sweep())
                return
            await self._release()
        finally:
            self._turn.release()

    async def _sweep(self) -> None:
        async with self._turn:
            if not self._group:  # else the leader's coming turn releases it
                await self._release()

    async def _release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            await hold.__aexit__(None, None, None)

    # -- creations, committed together -----------------------------------------------------------
    async def submit(self, item: Item) -> Result:
        """Write the item with the others queued meanwhile, in one turn; its result once the
        group is committed (or the exception the item answers)."""
        if self._in_turn.get():  # already in a turn: waiting for a leader's would never end
            return _answer((await self.commit_group([item]))[0])
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._group.append((item, done))
        if self._leader is None or self._leader.done():
            self._leader = asyncio.ensure_future(self._lead())
        return await done

    async def _lead(self) -> None:
        while self._group:
            taken: list[tuple[Item, asyncio.Future[Result]]] = []
            try:
                async with self.turn():
                    taken = self._take()
                    results = await self.commit_group([item for item, _ in taken])
            except Exception as e:  # the directory busy, the database gone: each writer's answer
                taken = taken or self._take()
                results = [e] * len(taken)
            for (_, done), result in zip(taken, results, strict=True):
                if done.done():  # its request was cancelled: the write stands, unanswered
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        taken, self._group = self._group[:MAX_GROUP], self._group[MAX_GROUP:]
        return taken


def _answer(result: Result | Exception) -> Result:
    if isinstance(result, Exception):
        raise result
    return result
