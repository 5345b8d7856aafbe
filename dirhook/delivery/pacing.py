"""Spacing sends to an endpoint's rate limit."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces sends to at most ``rate`` per second, across concurrent senders.

    No burst allowance: a receiver that asks for 50/s gets at most one request every
    20 ms. The gap is measured from the moment the previous sender was actually let
    through, not from a slot booked in advance: when the event loop stalls, booked
    slots would all come due at once and the receiver would see a burst (CI caught 58
    in one second at 50/s). Senders queue on a lock, so they leave in arrival order.
    ``next_slot`` (epoch seconds) is handed from one batch to the next so the pace
    holds across activities.
    """

    def __init__(self, rate: float | None, next_slot: float | None = None):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = next_slot or 0.0
        self._turn = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._turn:
            while (delay := self.next_slot - time.time()) > 0:
                await asyncio.sleep(delay)
            self.next_slot = time.time() + self.interval
