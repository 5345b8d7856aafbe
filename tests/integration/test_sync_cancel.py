"""`dirhook sync DIR --cancel` (issue 17, item 6): a running full pass stops cleanly, keeps
what it committed, and the next pass finishes the work with nothing lost or duplicated."""

from __future__ import annotations

import pytest

from tests.support.e2e_helpers import all_events, connect_directory, count_types, run_cli, sync
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]

USERS = 4000


@pytest.mark.timeout(300)
async def test_a_cancelled_pass_keeps_what_it_committed_and_the_next_one_finishes(stack, slapd, receiver, tmp_path):
    conn = await connect_directory(stack, slapd, receiver, USERS, 4, ldap_overrides={"page_size": 50})
    r = await stack.api.post(f"/v1/directories/{conn.id}/sync/cancel")
    assert r.status_code == 409 and "never synced" in r.json()["detail"]
    r = await stack.api.post(f"/v1/directories/{conn.id}/sync", params={"mode": "full"})
    assert r.status_code == 202

    async def writing():
        s = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
        return s if (s.get("progress") or {}).get("users_written", 0) > 0 else None

    await wait_for(writing, 60, "the pass to write its first users")
    out = await run_cli(stack, tmp_path, "sync", conn.id, "--cancel")
    assert "cancellation requested" in out and "CANCELED" in out
    status = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
    assert status["workflow_status"] == "CANCELED" and status["last_run"]["status"] == "cancelled", status
    created = count_types(await all_events(stack, conn.id)).get("user.created", 0)
    assert 0 < created < USERS, created  # stopped partway, its batches kept

    r = await stack.api.post(f"/v1/directories/{conn.id}/sync/cancel")
    assert r.status_code == 409 and "CANCELED" in r.json()["detail"]
    done = await sync(stack, conn.id, "full", timeout=240)
    assert done["state"] == "succeeded"
    events = count_types(await all_events(stack, conn.id))
    assert events["user.created"] == USERS and events.get("user.deleted", 0) == 0, events
