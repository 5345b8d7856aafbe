"""Deletion protection for pushes (issue 15): an IdP deprovisioning more of a SCIM directory
than its threshold within the window has every request accepted, and nothing sent, until an
operator decides. Approval sends them; rejection restores the users as they were, silently."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.e2e_helpers import all_events, awaiting_approval, sync_state
from tests.support.scim_helpers import USER, scim_directory
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def idle(stack, directory_id: str) -> bool:
    return (await sync_state(stack, directory_id))["workflow_status"] in ("COMPLETED", None)


async def in_parallel(calls, clients: int = 8) -> list:
    limit = asyncio.Semaphore(clients)  # an IdP provisioning in parallel

    async def one(call):
        async with limit:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


async def scim_total(scim) -> int:
    return (await scim.call("GET", "/Users", 200, params={"count": 0})).json()["totalResults"]


async def user_events(stack, directory_id: str, kind: str) -> int:
    return sum(1 for e in await all_events(stack, directory_id) if e["type"] == kind)


@pytest.mark.timeout(600)
async def test_a_mass_deprovision_is_accepted_and_held_until_an_operator_decides(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    created = await in_parallel(
        [
            lambda i=i: scim.call(
                "POST", "/Users", 201, json={"schemas": [USER], "userName": f"p{i:04d}@guard.example"}
            )
            for i in range(1000)
        ]
    )
    ids = [r.json()["id"] for r in created]
    await wait_for(lambda: len(route.events()) >= 1000, 120, "1000 user.created")
    before = len(await all_events(stack, scim.id))

    # 600 of 1,000 deleted in well under a minute: all accepted, none sent.
    async def delete_600() -> None:
        answers = await in_parallel([lambda u=u: scim.call("DELETE", f"/Users/{u}") for u in ids[:600]])
        assert [r.status_code for r in answers] == [204] * 600
        assert await scim_total(scim) == 400  # the IdP sees what it asked
        await scim.call("GET", f"/Users/{ids[0]}", 404)

    await delete_600()
    s = await wait_for(lambda: awaiting_approval(stack, scim.id), 120, "the deprovisions to be held")
    assert "600" in s["error"]
    held = (await stack.api.get(f"/v1/directories/{scim.id}/deletions")).json()
    assert held["awaiting_approval"] and held["users"] == 600 and len(held["sample"]) == 20
    assert len(await all_events(stack, scim.id)) == before
    users = (await stack.api.get(f"/v1/directories/{scim.id}/users", params={"limit": 1000})).json()["data"]
    assert len(users) == 1000

    # Rejected: restored as they were, and nobody told.
    r = await stack.api.post(f"/v1/directories/{scim.id}/deletions/reject")
    assert r.status_code == 200 and r.json()["outcome"].startswith("rejected"), r.text
    await wait_for(lambda: idle(stack, scim.id), 60, "the workflow to finish")
    assert await scim_total(scim) == 1000
    assert (await scim.call("GET", f"/Users/{ids[0]}", 200)).json()["userName"] == "p0000@guard.example"
    assert len(await all_events(stack, scim.id)) == before

    # Again, approved: the 600 deletions reach the receiver.
    await delete_600()
    await wait_for(lambda: awaiting_approval(stack, scim.id), 120, "the deprovisions to be held again")
    r = await stack.api.post(f"/v1/directories/{scim.id}/deletions/approve")
    assert r.status_code == 200 and r.json()["outcome"].startswith("approved"), r.text
    await wait_for(lambda: idle(stack, scim.id), 60, "the workflow to finish")
    assert await user_events(stack, scim.id, "user.deleted") == 600
    await wait_for(lambda: sum(e["type"] == "user.deleted" for e in route.events()) == 600, 60, "600 deletions")
    assert len((await stack.api.get(f"/v1/directories/{scim.id}/users", params={"limit": 1000})).json()["data"]) == 400

    # Deactivations count too (Okta's deprovisioning): 100 of the 400 left is over 10 %.
    as_created = (await scim.call("GET", f"/Users/{ids[650]}", 200)).json()
    deactivate = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }

    async def deactivate_100() -> None:
        answers = await in_parallel(
            [lambda u=u: scim.call("PATCH", f"/Users/{u}", json=deactivate) for u in ids[600:700]]
        )
        assert {r.status_code for r in answers} <= {200, 204}
        assert (await scim.call("GET", f"/Users/{ids[650]}", 200)).json()["active"] is False  # as the IdP asked
        await wait_for(lambda: awaiting_approval(stack, scim.id), 120, "the deactivations to be held")
        dirhook_users = (await stack.api.get(f"/v1/directories/{scim.id}/users", params={"limit": 1000})).json()
        assert all(u["active"] for u in dirhook_users["data"])  # nothing applied yet

    updated = await user_events(stack, scim.id, "user.updated")
    await deactivate_100()
    r = await stack.api.post(f"/v1/directories/{scim.id}/deletions/reject")
    assert r.status_code == 200, r.text
    await wait_for(lambda: idle(stack, scim.id), 60, "the workflow to finish")
    restored = (await scim.call("GET", f"/Users/{ids[650]}", 200)).json()
    assert {k: v for k, v in restored.items() if k != "meta"} == {k: v for k, v in as_created.items() if k != "meta"}
    assert await user_events(stack, scim.id, "user.updated") == updated

    await deactivate_100()
    r = await stack.api.post(f"/v1/directories/{scim.id}/deletions/approve")
    assert r.status_code == 200, r.text
    await wait_for(lambda: idle(stack, scim.id), 60, "the workflow to finish")
    assert await user_events(stack, scim.id, "user.updated") == updated + 100
    dirhook_users = (await stack.api.get(f"/v1/directories/{scim.id}/users", params={"limit": 1000})).json()["data"]
    assert sum(not u["active"] for u in dirhook_users) == 100


async def test_a_few_deprovisions_go_through_in_one_settled_batch(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    ids = [
        (await scim.call("POST", "/Users", 201, json={"schemas": [USER], "userName": f"f{i}@guard.example"})).json()[
            "id"
        ]
        for i in range(30)
    ]
    await wait_for(lambda: len(route.events()) >= 30, 60, "30 user.created")
    await scim.call("DELETE", f"/Users/{ids[0]}", 204)
    await scim.call("DELETE", f"/Users/{ids[1]}", 204)
    events = await wait_for(lambda: len(route.events()) >= 32 and route.events(), 60, "the two deletions")
    assert sorted(e["data"]["username"] for e in events[30:]) == ["f0@guard.example", "f1@guard.example"]
    assert {e["type"] for e in events[30:]} == {"user.deleted"}
