"""Delivery on a receiver's bad day, on a stack whose parts are killed for real: a Temporal dev
server on a SQLite file, delivery workers as their own processes, 6,000 committed events per
scenario. Nothing may be lost, retries go out in batches, and the number of workflows stays
bounded whatever fails."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import pytest_asyncio

from tests.support.delivery_stack import DeliveryStack
from tests.support.receiver import Receiver, Route
from tests.support.wait import wait_for

N = 6000
FIRST_RETRY_WAIT = 5.0  # the default schedule's first wait (config.DEFAULT_RETRY_SCHEDULE)
SWEEP_SECONDS = 10.0  # the delivery sweep's interval here (60 s by default)


@pytest_asyncio.fixture(scope="module")
async def faults(tmp_path_factory):
    stack = DeliveryStack(tmp_path_factory.mktemp("delivery-faults"), sweep_seconds=SWEEP_SECONDS)
    receiver = Receiver()
    await receiver.start()
    try:
        stack.start_temporal()
        await stack.connect()
        stack.start_worker()
        yield stack, receiver
    finally:
        await receiver.stop()
        stack.close()


def unique_accepted(route: Route) -> int:
    return len({r.headers["webhook-id"] for r in route.accepted})


def duplicates(route: Route) -> int:
    return len(route.accepted) - unique_accepted(route)


async def deliver(stack: DeliveryStack, receiver: Receiver, name: str, respond=None, **settings) -> Route:
    secret = stack.add_endpoint(name, receiver.url(name), **settings)
    route = receiver.route(name, secret, respond)
    await asyncio.to_thread(stack.commit, name, N)
    return route


async def drained(stack: DeliveryStack, route: Route, name: str, timeout: float, check=None) -> float:
    """Wait until every event reached the receiver and is recorded as succeeded; returns when
    the last one arrived (time.monotonic). ``check`` runs on every poll (invariants)."""

    def done():
        if check:
            check()
        return unique_accepted(route) == N and stack.statuses(name) == {"succeeded": N}

    await wait_for(lambda: asyncio.to_thread(done), timeout, f"{N} deliveries to {name}", interval=0.2)
    return max(r.at for r in route.accepted)


@pytest.mark.timeout(300)
async def test_500_on_every_first_attempt_is_retried_in_batches_and_nothing_is_stranded(faults):
    stack, receiver = faults
    # The happy path in the same run, to bound the failure path by.
    happy = await deliver(stack, receiver, "happy")
    t0 = time.monotonic()
    await stack.wake("happy")
    happy_seconds = await drained(stack, happy, "happy", 120) - t0

    workflows_before = await stack.workflow_count()
    route = await deliver(stack, receiver, "blip", respond=lambda _e, attempt: 500 if attempt == 1 else 200)

    def nothing_stranded():
        # The defect this test was written for: rows marked retrying with no time and no
        # workflow behind them (the batch activity cancelled while it started retry workflows).
        assert stack.ownerless("blip") == 0, stack.statuses("blip")

    t0 = time.monotonic()
    await stack.wake("blip")
    bound = 2 * (FIRST_RETRY_WAIT + happy_seconds)
    seconds = await drained(stack, route, "blip", max(bound, 60) + 60, nothing_stranded) - t0
    print(
        f"happy path {N} in {happy_seconds:.1f} s; 500 on every first attempt: {N} in {seconds:.1f} s "
        f"(bound {bound:.1f} s), {len(route.refused)} refused first attempts, {duplicates(route)} duplicates"
    )
    assert seconds <= bound
    assert len(route.refused) == N and duplicates(route) == 0  # each webhook-id accepted exactly once
    attempts = stack.attempts("blip")
    assert all([a.status_code for a in tries] == [500, 200] for tries in attempts.values())
    for tries in attempts.values():  # the retry waited its scheduled 5 s (±10 % jitter)
        waited = (tries[1].started_at - tries[0].started_at).total_seconds()
        assert FIRST_RETRY_WAIT * 0.9 - 0.1 <= waited <= FIRST_RETRY_WAIT * 1.1 + bound, waited
    # Retries went out in batches: at most a few dispatcher runs, never a workflow per event.
    assert await stack.workflow_count() - workflows_before <= 3


async def dispatcher_details(stack: DeliveryStack, endpoint_id: str) -> str:
    from temporalio.api.sdk.v1 import WorkflowMetadata

    handle = stack.client.get_workflow_handle(f"dispatch/{endpoint_id}")
    return (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details


@pytest.mark.timeout(300)
async def test_receiver_down_for_60_s_opens_the_breaker_and_drains_on_the_first_successful_probe(faults):
    stack, _shared = faults
    down = Receiver()  # a receiver of its own: this test takes it down
    await down.start()
    # A short schedule so the probes of a 60 s outage come every few seconds, not at 5 min.
    schedule = [2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    route = await deliver(stack, down, "outage", retry_schedule=schedule)
    await stack.wake("outage")
    try:
        await wait_for(lambda: unique_accepted(route) >= 1500, 60, "a quarter of the events")
    finally:
        await down.stop()  # connection refused from here on
    went_down = time.monotonic()
    delivered_before = unique_accepted(route)

    def breaker_open():
        with stack.sessions() as s:
            from dirhook.db.schema import Endpoint

            return s.get(Endpoint, "outage").breaker_opened_at is not None

    await wait_for(lambda: asyncio.to_thread(breaker_open), 30, "the breaker to open")
    opened_after = time.monotonic() - went_down
    details = await wait_for(lambda: _open_details(stack, "outage"), 30, "the dispatcher to show the open circuit")
    assert "circuit open" in details and "held" in details
    # Held, not hammered: while it is down, only probes (one at a time) reach for it.
    attempts_at_open = sum(len(a) for a in stack.attempts("outage").values())
    await asyncio.sleep(max(0.0, 60 - (time.monotonic() - went_down)))  # the outage itself
    probes_while_down = sum(len(a) for a in stack.attempts("outage").values()) - attempts_at_open
    assert probes_while_down <= 60 / schedule[0]

    await down.start()
    try:
        last = await drained(stack, route, "outage", 90)
    finally:
        await down.stop()
    first_success_after = min(r.at for r in route.accepted if r.at > went_down)
    print(
        f"receiver down 60 s with {delivered_before} of {N} delivered: breaker open after {opened_after:.1f} s, "
        f"{probes_while_down} probes while down; after the first successful probe the other "
        f"{N - delivered_before - 1} arrived in {last - first_success_after:.1f} s; {duplicates(route)} duplicates"
    )
    assert last - first_success_after <= 30
    # Every attempt is recorded, numbered in order, and none went out before its planned time.
    for tries in stack.attempts("outage").values():
        assert [a.attempt for a in tries] == list(range(1, len(tries) + 1))
        assert [a.status_code for a in tries][-1] == 200 and all(a.status_code is None for a in tries[:-1])
        for a in tries:
            assert a.scheduled_for is None or a.started_at >= a.scheduled_for - timedelta(milliseconds=50), a
    with stack.sessions() as s:
        from dirhook.db.schema import Endpoint

        e = s.get(Endpoint, "outage")
        assert e.breaker_opened_at is None and e.failing_since is None and e.enabled  # healthy again


async def _open_details(stack: DeliveryStack, endpoint_id: str) -> str | None:
    details = await dispatcher_details(stack, endpoint_id)
    return details if "circuit open" in details else None


def first_attempt_fails(_event: dict, attempt: int) -> int:
    return 500 if attempt == 1 else 200


@pytest.mark.timeout(300)
async def test_worker_sigkilled_mid_delivery_drains_within_30_s_of_a_new_worker(faults):
    """Killed inside the failure path: first attempts failing, retries coming due."""
    stack, receiver = faults
    # Slower (4 in flight), so the kill lands mid-way.
    route = await deliver(stack, receiver, "killed", respond=first_attempt_fails, max_concurrency=4)
    await stack.wake("killed")
    await wait_for(lambda: unique_accepted(route) >= 1000, 60, "a sixth of the events")
    worker = stack.workers[0]
    stack.kill_worker(worker)
    at_kill = unique_accepted(route)
    assert at_kill < N, "delivery ended before the kill: nothing was tested"
    stack.start_worker()
    started = time.monotonic()
    last = await drained(stack, route, "killed", 90)
    print(
        f"worker SIGKILLed with {at_kill} of {N} delivered: drained {last - started:.1f} s after the new worker "
        f"started; {duplicates(route)} duplicates (same webhook-id), 0 lost"
    )
    assert last - started <= 30


@pytest.mark.timeout(300)
async def test_temporal_restarted_mid_delivery_drains_within_30_s_of_it_being_back(faults):
    stack, receiver = faults
    # One endpoint inside the failure path (every first attempt refused), one on the happy path.
    routes = {
        "restart-a": await deliver(stack, receiver, "restart-a", respond=first_attempt_fails, max_concurrency=4),
        "restart-b": await deliver(stack, receiver, "restart-b", max_concurrency=4),
    }
    await stack.wake("restart-a")
    await wait_for(lambda: unique_accepted(routes["restart-a"]) >= 300, 60, "restart-a's retries under way")
    await stack.wake("restart-b")
    await wait_for(lambda: unique_accepted(routes["restart-b"]) >= 500, 60, "restart-b under way")
    stack.stop_temporal()
    at_stop = {name: unique_accepted(r) for name, r in routes.items()}
    assert all(n < N for n in at_stop.values()), at_stop
    stack.start_temporal()
    back = time.monotonic()
    lasts = {name: await drained(stack, r, name, 90) for name, r in routes.items()}
    for name, r in routes.items():
        print(
            f"Temporal restarted with {at_stop[name]} of {N} delivered to {name}: drained "
            f"{lasts[name] - back:.1f} s after it was back; {duplicates(r)} duplicates, 0 lost"
        )
        assert lasts[name] - back <= 30


@pytest.mark.timeout(120)
async def test_a_lost_wake_up_is_made_good_by_the_sweep_within_its_interval(faults):
    """Events committed while nothing woke their dispatcher (Temporal unreachable at commit, or
    the committing process killed before its wake-up) go out on the sweep's next round."""
    stack, receiver = faults
    from temporalio.client import ScheduleIntervalSpec

    sweep = await stack.client.get_schedule_handle("delivery-sweep").describe()
    assert [i.every for i in sweep.schedule.spec.intervals if isinstance(i, ScheduleIntervalSpec)] == [
        timedelta(seconds=SWEEP_SECONDS)
    ]
    secret = stack.add_endpoint("unwoken", receiver.url("unwoken"))
    route = receiver.route("unwoken", secret)
    await asyncio.to_thread(stack.commit, "unwoken", 100)
    committed = time.monotonic()
    # No wake-up: the sweep alone must find them (5 s settle + one interval, and its run).
    await wait_for(lambda: unique_accepted(route) == 100, SWEEP_SECONDS + 5 + 20, "the sweep to deliver them")
    print(
        f"lost wake-up: 100 events delivered {max(r.at for r in route.accepted) - committed:.1f} s after commit "
        f"(sweep every {SWEEP_SECONDS:g} s, 5 s settle)"
    )
