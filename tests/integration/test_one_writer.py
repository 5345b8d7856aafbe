"""One writer per directory: SCIM pushes, passes, recomputes and deletion decisions never
interleave, so receivers mirror the directory exactly and a deprovisioned person never comes
back under a new id."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from sqlalchemy import delete

from dirhook.db.scim_tables import ScimResource
from dirhook.directory_lock import DirectoryBusy, DirectoryLocks
from tests.support.e2e_helpers import all_events
from tests.support.histories import record
from tests.support.scim_helpers import PATCH, USER, scim_directory
from tests.support.wait import wait_for


async def sync_state(stack, directory_id: str) -> dict:
    return (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()


async def request(stack, directory_id: str, mode: str) -> None:
    r = await stack.api.post(f"/v1/directories/{directory_id}/sync", params={"mode": mode})
    assert r.status_code == 202, r.text


async def settled(stack, directory_id: str) -> bool:
    return (await sync_state(stack, directory_id))["workflow_status"] in ("COMPLETED", "FAILED")


async def race(apis: list, scims: list, directory_id: str, route, n: int = 120) -> dict:
    """An IdP pushing creates, deactivations and deletes of ``n`` users, spread over the SCIM
    clients (API replicas), while full passes and recomputes of the directory are requested
    without pause through ``apis``; then checks what receivers and the API end up with."""
    last_said: dict[str, str] = {}  # userName -> "active" | "inactive" | "deleted"

    async def idp(i: int) -> None:
        scim = scims[i % len(scims)]
        name = f"person{i:03d}@example.com"
        r = await retrying(
            scim.call,
            "POST",
            "/Users",
            json={
                "schemas": [USER],
                "userName": name,
                "active": True,
                "name": {"givenName": "P", "familyName": str(i)},
            },
        )
        assert r.status_code == 201, r.text
        uid = r.json()["id"]
        last_said[name] = "active"
        scim = scims[(i + 1) % len(scims)]  # the next request may reach another replica
        if i % 3 == 1:
            r = await retrying(
                scim.call,
                "PATCH",
                f"/Users/{uid}",
                json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]},
            )
            assert r.status_code in (200, 204), r.text
            last_said[name] = "inactive"
        elif i % 3 == 2:
            r = await retrying(scim.call, "DELETE", f"/Users/{uid}")
            assert r.status_code == 204, r.text
            last_said[name] = "deleted"

    pushing = True

    async def passes() -> int:
        asked = 0
        while pushing:  # a mapping change's recompute and an operator's full resync, again and again
            await request_on(apis[asked % len(apis)], directory_id, "full" if asked % 2 else "recompute")
            asked += 1
            await asyncio.sleep(0.05)
        return asked

    limit = asyncio.Semaphore(8)  # an IdP provisioning in parallel

    async def bounded(i: int) -> None:
        async with limit:
            await idp(i)

    passer = asyncio.create_task(passes())
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(bounded(i) for i in range(n)))
    finally:
        pushing = False
        asked = await passer
    pushed_in = time.monotonic() - t0
    api = apis[0]
    await wait_for(lambda: settled_on(api, directory_id), 120, "the last pass")
    await request_on(api, directory_id, "full")  # one more, after everything: it must change nothing
    await wait_for(lambda: settled_on(api, directory_id), 120, "the final full pass")

    # The API's users are what the IdP said.
    users = (await api.get(f"/v1/directories/{directory_id}/users", params={"limit": 1000})).json()["data"]
    assert {u["username"]: ("active" if u["active"] else "inactive") for u in users} == {
        name: said for name, said in last_said.items() if said != "deleted"
    }

    # Receivers saw one dirhook id per person, and each person's latest event says what the IdP said.
    events = await events_on(api, directory_id)
    await wait_for(lambda: len(route.events()) >= len(events), 60, f"{len(events)} events at the receiver")
    ids: dict[str, set[str]] = {}
    latest: dict[str, dict] = {}
    for e in route.events():
        if not e["type"].startswith("user."):
            continue
        name = e["data"]["username"]
        ids.setdefault(name, set()).add(e["data"]["id"])
        if name not in latest or e["sequence"] > latest[name]["sequence"]:
            latest[name] = e
    assert {name: len(v) for name, v in ids.items() if len(v) > 1} == {}
    for name, said in last_said.items():
        e = latest[name]
        got = "deleted" if e["type"] == "user.deleted" else ("active" if e["data"]["active"] else "inactive")
        assert got == said, (name, e["type"], e["sequence"])
    return {"n": n, "seconds": pushed_in, "passes_asked": asked, "events": len(events)}


async def request_on(api, directory_id: str, mode: str) -> None:
    r = await api.post(f"/v1/directories/{directory_id}/sync", params={"mode": mode})
    assert r.status_code == 202, r.text


async def settled_on(api, directory_id: str) -> bool:
    s = (await api.get(f"/v1/directories/{directory_id}/sync")).json()
    return s["workflow_status"] in ("COMPLETED", "FAILED")


async def events_on(api, directory_id: str) -> list[dict]:
    events, after = [], None
    while True:
        params = {"directory_id": directory_id, "limit": 1000, **({"after": after} if after else {})}
        page = (await api.get("/v1/events", params=params)).json()
        events += page["data"]
        after = page["next_cursor"]
        if not page["has_more"]:
            return events


@pytest.mark.timeout(300)
async def test_scim_pushes_racing_full_passes_and_recomputes_keep_one_id_per_person(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    # The race deprovisions two thirds of the directory on purpose: deletion protection for
    # pushes (tested in test_scim_deletion_guard.py) is not what this test is about.
    r = await stack.api.patch(
        f"/v1/directories/{scim.id}", json={"deletion_threshold_count": 10_000, "deletion_threshold_percent": 100}
    )
    assert r.status_code == 200, r.text
    result = await race([stack.api], [scim], scim.id, route)
    print(
        f"{stack.name}: {result['n']} users pushed in {result['seconds']:.1f} s while {result['passes_asked']} "
        f"full passes and recomputes were requested; {result['events']} events, one id per person"
    )
    if stack.name == "sqlite":
        await record(stack.client, f"dirsync/{scim.id}", "sync_queued_requests")


async def retrying(call, *args, **kw):
    while True:
        r = await call(*args, **kw)
        if r.status_code != 503:
            return r
        await asyncio.sleep(float(r.headers["retry-after"]) * random.random())


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
@pytest.mark.timeout(180)
async def test_held_deletions_survive_scim_pushes_and_approval_deletes_exactly_them(stack, receiver):
    scim, _endpoint, _route = await scim_directory(stack, receiver)
    # At most 2 deletions at once (the pushed ones below are 2, of a directory of 6 by then).
    r = await stack.api.patch(
        f"/v1/directories/{scim.id}", json={"deletion_threshold_count": 2, "deletion_threshold_percent": 100}
    )
    assert r.status_code == 200, r.text
    ids = []
    for i in range(10):
        r = await scim.call("POST", "/Users", expect=201, json={"schemas": [USER], "userName": f"held{i}@example.com"})
        ids.append(r.json()["id"])
    # Five resources vanish from the SCIM table behind dirhook's back (a restore from an old
    # backup): the next full pass finds five users gone, above the threshold of 2, and holds.
    with stack.sessions.begin() as s:
        s.execute(delete(ScimResource).where(ScimResource.directory_id == scim.id, ScimResource.id.in_(ids[:5])))
    await request(stack, scim.id, "full")

    async def awaiting():
        s = await sync_state(stack, scim.id)
        return s if s["state"] == "awaiting_approval" else None

    await wait_for(awaiting, 60, "the pass to hold 5 deletions")
    # Other writes land meanwhile: a creation, a deactivation, a deletion below the threshold.
    await scim.call("POST", "/Users", expect=201, json={"schemas": [USER], "userName": "newcomer@example.com"})
    await scim.patch(f"/Users/{ids[5]}", {"op": "replace", "path": "active", "value": False})
    await scim.call("DELETE", f"/Users/{ids[6]}", expect=204)
    held = (await stack.api.get(f"/v1/directories/{scim.id}/deletions")).json()
    assert held["awaiting_approval"] and held["users"] == 5, held  # the pushes wiped nothing

    r = await stack.api.post(f"/v1/directories/{scim.id}/deletions/approve")
    assert r.status_code == 200 and r.json()["outcome"].startswith("approved"), r.text
    await wait_for(lambda: settled(stack, scim.id), 60, "the approval")
    users = (await stack.api.get(f"/v1/directories/{scim.id}/users", params={"limit": 100})).json()["data"]
    assert sorted(u["username"] for u in users) == sorted(
        [f"held{i}@example.com" for i in (5, 7, 8, 9)] + ["newcomer@example.com"]
    )
    deleted = {e["data"]["username"] for e in await all_events(stack, scim.id) if e["type"] == "user.deleted"}
    assert deleted == {f"held{i}@example.com" for i in (0, 1, 2, 3, 4, 6)}
    await record(stack.client, f"dirsync/{scim.id}", "sync_deletion_approval")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
@pytest.mark.timeout(120)
async def test_a_failed_pass_keeps_the_recompute_queued_behind_it(stack):
    from tests.support.e2e_helpers import scratch_directory  # an LDAP directory at a port nothing listens on

    d = await scratch_directory(stack)
    await request(stack, d["id"], "full")
    await request(stack, d["id"], "recompute")  # e.g. a role mapping changed meanwhile
    await wait_for(lambda: settled(stack, d["id"]), 60, "the passes")
    runs = (await stack.api.get(f"/v1/directories/{d['id']}/sync-runs")).json()
    assert [r["mode"] for r in runs if r["status"] == "succeeded"] == ["recompute"], runs
    assert any(r["mode"] == "full" and r["status"] == "failed" for r in runs), runs
    s = await sync_state(stack, d["id"])
    # The failure is shown as before: the workflow failed, with the source's error.
    assert s["workflow_status"] == "FAILED" and s["state"] == "failed" and s["error"], s
    await record(stack.client, f"dirsync/{d['id']}", "sync_failed_pass_then_queued_recompute")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
@pytest.mark.timeout(60)
async def test_a_scim_write_that_cannot_get_its_directory_answers_503_and_changes_nothing(stack, receiver):
    scim, _endpoint, _route = await scim_directory(stack, receiver)
    locks = DirectoryLocks(stack.settings.sqlalchemy_url)
    before = len(await all_events(stack, scim.id))

    def hold_it(started: asyncio.Event, release: asyncio.Event, loop) -> None:
        with locks.hold(scim.id, 1, "test"):  # another writer: a pass of this directory
            loop.call_soon_threadsafe(started.set)
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(60)

    started, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(asyncio.to_thread(hold_it, started, release, asyncio.get_running_loop()))
    await asyncio.wait_for(started.wait(), 10)
    try:
        t0 = time.monotonic()
        r = await scim.call("POST", "/Users", json={"schemas": [USER], "userName": "blocked@example.com"})
        waited = time.monotonic() - t0
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and "busy" in r.json()["detail"]
        assert waited >= stack.settings.directory_write_wait_seconds * 0.9
        with pytest.raises(DirectoryBusy):  # and a second writer elsewhere gets the same answer
            with locks.hold(scim.id, 0.2, "test"):
                pass
    finally:
        release.set()
        await holder
    found = await scim.call("GET", "/Users", params={"filter": 'userName eq "blocked@example.com"'}, expect=200)
    assert found.json()["totalResults"] == 0 and len(await all_events(stack, scim.id)) == before
    # Free again: the same write goes through.
    await scim.call("POST", "/Users", expect=201, json={"schemas": [USER], "userName": "blocked@example.com"})
