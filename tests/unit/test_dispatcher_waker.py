"""Wake-ups of endpoints' dispatchers after SCIM writes (dirhook/scim/projection.py): every
commit is followed by a signal sent after it; a steady stream of commits is not a signal
per commit; the first after a quiet spell goes at once."""

from __future__ import annotations

import asyncio
import time

from dirhook.scim import projection
from dirhook.scim.projection import DispatcherWaker

WAIT = 5.0


class Signals:
    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []  # (endpoint, when)

    async def __call__(self, _client, _settings, endpoint_id: str) -> None:
        self.sent.append((endpoint_id, time.monotonic()))
        await asyncio.sleep(0.005)  # a round trip to Temporal


async def _client():
    return object()


async def settled(waker: DispatcherWaker) -> None:
    await asyncio.wait_for(asyncio.gather(*waker._tasks), WAIT)


async def test_a_stream_of_commits_is_followed_by_a_signal_after_the_last_and_not_one_each(monkeypatch):
    signals = Signals()
    monkeypatch.setattr(projection.t, "wake_dispatcher", signals)
    waker = DispatcherWaker(settings=None, temporal=_client)  # type: ignore[arg-type]
    commits: list[float] = []
    deadline = time.monotonic() + 3 * waker.MIN_INTERVAL
    while time.monotonic() < deadline:  # a commit every 10 ms for three intervals
        commits.append(time.monotonic())
        waker.wake({"ep_a"}, "dir_1")
        await asyncio.sleep(0.01)
    await settled(waker)
    times = [when for ep, when in signals.sent if ep == "ep_a"]
    assert times[0] - commits[0] < 0.05, "the first wake-up after a quiet spell waited"
    assert times[-1] >= commits[-1], "the last commit had no wake-up sent after it"
    assert len(times) <= 5 < len(commits) / 5, (len(times), len(commits))
    assert all(b - a >= waker.MIN_INTERVAL * 0.9 for a, b in zip(times, times[1:], strict=False))


async def test_endpoints_are_woken_independently_and_failures_do_not_stop_later_ones(monkeypatch):
    signals = Signals()
    failing = {"ep_down"}

    async def signal(client, settings, endpoint_id):
        await signals(client, settings, endpoint_id)
        if endpoint_id in failing:
            raise ConnectionError("temporal unreachable")

    monkeypatch.setattr(projection.t, "wake_dispatcher", signal)
    waker = DispatcherWaker(settings=None, temporal=_client)  # type: ignore[arg-type]
    waker.wake({"ep_down", "ep_up"}, "dir_1")
    await settled(waker)
    failing.clear()
    waker.wake({"ep_down"}, "dir_1")  # the next commit tries again
    await settled(waker)
    assert sorted(ep for ep, _ in signals.sent) == ["ep_down", "ep_down", "ep_up"]
