"""Each directory's incremental passes run on a Temporal Schedule: pausable, changeable, and
never overlapping requested passes."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.e2e_helpers import connect_directory, run_cli
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def runs(stack, directory_id: str) -> list[dict]:
    return (await stack.api.get(f"/v1/directories/{directory_id}/sync-runs", params={"limit": 100})).json()


@pytest.mark.timeout(120)
async def test_schedule_runs_passes_and_can_be_paused_resumed_and_changed(stack, slapd, receiver, tmp_path):
    conn = await connect_directory(stack, slapd, receiver, 20, 2)
    r = await stack.api.patch(f"/v1/directories/{conn.id}", json={"sync_interval_seconds": 1})
    assert r.status_code == 200 and r.json()["sync_interval_seconds"] == 1
    await wait_for(lambda: _count_at_least(stack, conn.id, 2), 30, "two scheduled passes")
    # Requested passes while the schedule ticks: never two passes at once.
    for r in await asyncio.gather(*(stack.api.post(f"/v1/directories/{conn.id}/sync") for _ in range(5))):
        assert r.status_code == 202

    paused = (await stack.api.post(f"/v1/directories/{conn.id}/schedule/pause")).json()
    assert paused["paused"] is True
    await wait_for(lambda: _idle(stack, conn.id), 30, "the sync workflow to go idle")
    settled = len(await runs(stack, conn.id))
    # An absence has no condition to wait for: let three ticks' worth of time pass.
    await asyncio.sleep(3)
    assert len(await runs(stack, conn.id)) == settled

    spans = sorted((r["started_at"], r["finished_at"]) for r in await runs(stack, conn.id))
    for (_s1, end1), (start2, _e2) in zip(spans, spans[1:]):
        assert end1 <= start2, f"passes overlapped: {spans}"

    resumed = (await stack.api.post(f"/v1/directories/{conn.id}/schedule/resume")).json()
    assert resumed["paused"] is False and resumed["next_runs"]
    await wait_for(lambda: _count_at_least(stack, conn.id, settled + 1), 30, "a pass after resuming")

    out = await run_cli(stack, tmp_path, "directories", "schedule", conn.id, "--interval", "3600")
    assert "every 3600 s, active" in out, out
    desc = await stack.client.get_schedule_handle(f"dirsync-schedule/{conn.id}").describe()
    assert desc.schedule.spec.intervals[0].every.total_seconds() == 3600

    assert (await stack.api.delete(f"/v1/directories/{conn.id}")).status_code == 204
    with pytest.raises(Exception):
        await stack.client.get_schedule_handle(f"dirsync-schedule/{conn.id}").describe()


async def _count_at_least(stack, directory_id: str, n: int) -> bool:
    return len(await runs(stack, directory_id)) >= n


async def _idle(stack, directory_id: str) -> bool:
    s = (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()
    return s["workflow_status"] != "RUNNING"
