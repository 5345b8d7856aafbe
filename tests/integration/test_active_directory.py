"""Active Directory on a real Samba AD domain controller: DirSync incremental passes, each
change made with samba-tool emitting exactly its events; change notifications starting
passes by themselves."""

from __future__ import annotations

import asyncio
import threading
import time

import ldap3
import pytest

from tests.conftest import unique
from tests.support.e2e_helpers import listening, subscribe, sync
from tests.support.samba import ADMIN, ADMIN_PW, BASE
from tests.support.scim_helpers import summary
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def _directory_in_new_ou(
    stack, samba_dc, prefix: str, *user: str, live: bool, **ldap_settings
) -> tuple[str, dict]:
    """An OU holding one user made with samba-tool, and an AD directory over it."""
    ou = unique(prefix)
    samba_dc.tool("ou", "create", f"OU={ou},{BASE}")
    samba_dc.tool("user", "create", *user, f"--userou=OU={ou}")
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": f"AD {ou}",
            "bind_password": ADMIN_PW,
            "ldap": {
                "url": samba_dc.url,
                "bind_dn": ADMIN,
                "flavour": "active_directory",
                "user_base_dn": f"OU={ou},{BASE}",
                "user_filter": "(&(objectClass=user)(!(objectClass=computer)))",
                "group_filter": "(objectClass=group)",
                "live": live,
                **ldap_settings,
            },
        },
    )
    assert r.status_code == 201, r.text
    return ou, r.json()


async def test_each_samba_tool_change_emits_exactly_its_events(stack, samba_dc, receiver):
    # live: False, each step's pass is this test's own (the live listener is the next test's)
    ou, d = await _directory_in_new_ou(
        stack,
        samba_dc,
        "Staff",
        "ada",
        "Passw0rd!Ada-1",
        "--given-name=Ada",
        "--surname=Lovelace",
        "--mail-address=ada@example.test",
        "--job-title=Engineer",
        live=False,
    )
    _endpoint, route = await subscribe(stack, receiver, [d["id"]])
    status = await sync(stack, d["id"], "full")
    assert status["last_run"]["status"] == "succeeded", status
    first = await wait_for(lambda: len(route.events()) >= 2 and route.events(), 30, "the first pass")
    assert summary(first) == [("user.created", "ada@example.test"), ("directory.sync_completed",)]
    ada = first[0]["data"]
    assert (ada["given_name"], ada["family_name"], ada["title"], ada["active"]) == ("Ada", "Lovelace", "Engineer", True)
    cursor = (await stack.api.get(f"/v1/directories/{d['id']}")).json()["cursor"]
    assert cursor.get("dirsync")  # incremental passes ride DirSync from here

    seen = len(first)

    async def step(*tool_args: str, expect: list[tuple]) -> list[dict]:
        nonlocal seen
        if tool_args:
            samba_dc.tool(*tool_args)
        result = await sync(stack, d["id"])
        assert result["last_run"]["status"] == "succeeded", result
        n = len(expect) + (1 if expect else 0)
        await wait_for(lambda: len(route.events()) >= seen + n, 30, str(expect))
        emitted = (await stack.api.get("/v1/events", params={"directory_id": d["id"]})).json()["data"]
        assert len(emitted) == seen + n, summary(emitted[seen:])  # nothing else was emitted
        events = route.events()[seen:]
        # raw_attributes differ by provider and directory: the normalized fields are the contract
        got = [
            (
                *summary([e])[0],
                {k: v for k, v in e["previous_attributes"].items() if k != "raw_attributes"}
                if e.get("previous_attributes")
                else None,
            )
            for e in events[: len(expect)]
        ]
        assert got == expect
        if expect:
            assert events[-1]["type"] == "directory.sync_completed"
        seen += n
        return events

    await step(expect=[])  # nothing changed: nothing sent
    created = await step(
        "user",
        "create",
        "grace",
        "Passw0rd!Grace-1",
        "--given-name=Grace",
        "--surname=Hopper",
        "--mail-address=grace@example.test",
        "--job-title=Admiral",
        f"--userou=OU={ou}",
        expect=[("user.created", "grace@example.test", None)],
    )
    assert created[0]["data"]["title"] == "Admiral"
    await step(
        "user",
        "rename",
        "grace",
        "--surname=Murray Hopper",
        expect=[("user.updated", "grace@example.test", {"family_name": "Hopper"})],
    )
    await step("user", "disable", "grace", expect=[("user.updated", "grace@example.test", {"active": True})])
    await step("user", "enable", "grace", expect=[("user.updated", "grace@example.test", {"active": False})])
    await step("group", "add", "engineers", f"--groupou=OU={ou}", expect=[("group.created", "engineers", None)])
    await step(
        "group",
        "addmembers",
        "engineers",
        "grace",
        expect=[
            ("user.updated", "grace@example.test", {"groups": []}),
            ("group.user_added", "engineers", "grace@example.test", None),
        ],
    )
    await step(
        "user",
        "delete",
        "grace",
        expect=[
            ("group.user_removed", "engineers", "grace@example.test", None),
            ("user.deleted", "grace@example.test", None),
        ],
    )


def _admin_ldap(samba_dc) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server("127.0.0.1", 389, get_info=ldap3.NONE), ADMIN, ADMIN_PW, auto_bind=True)


def _ldap_receiver_threads() -> set[threading.Thread]:
    """ldap3's socket-reading threads of live listeners (this test's worker runs in-process)."""
    return {t for t in threading.enumerate() if type(t).__name__ == "ReceiverSocketThread" and t.is_alive()}


async def test_changes_notified_by_active_directory_arrive_by_themselves(stack, samba_dc, receiver):
    others = _ldap_receiver_threads()
    ou, d = await _directory_in_new_ou(
        stack,
        samba_dc,
        "Live",
        "alan",
        "Passw0rd!Alan-1",
        "--given-name=Alan",
        "--surname=Turing",
        "--mail-address=alan@example.test",
        "--job-title=Mathematician",
        live=True,
        timeout_seconds=2,
    )  # the LDAP timeout: see the quiet spell below
    _endpoint, route = await subscribe(stack, receiver, [d["id"]])
    await sync(stack, d["id"], "full")
    await wait_for(lambda: route.events("directory.sync_completed"), 30, "the first pass")
    listener = stack.client.get_workflow_handle(f"ldaplisten/{d['id']}")
    await wait_for(lambda: listening(listener), 30, "the listener's notification search")
    alan = f"CN=Alan Turing,OU={ou},{BASE}"
    admin = await asyncio.to_thread(_admin_ldap, samba_dc)

    # A change over LDAP (as an admin console or a provisioning tool makes it): the DC
    # announces it at once. AD replays nothing, so changes are made until one shows the
    # search held (unbounded); the next is timed.
    async def warmed_up() -> list:
        await asyncio.to_thread(admin.modify, alan, {"title": [(ldap3.MODIFY_REPLACE, [unique("Cryptanalyst")])]})
        try:
            return await wait_for(lambda: route.events("user.updated"), 2, "a warm-up change")
        except AssertionError:  # made before the search was held: try again
            return None

    await wait_for(warmed_up, 60, "the listener's first pass")
    seen = len(route.events("user.updated"))
    started = time.monotonic()
    assert await asyncio.to_thread(admin.modify, alan, {"title": [(ldap3.MODIFY_REPLACE, ["Codebreaker"])]})
    updated = await wait_for(lambda: route.events("user.updated")[seen:], 1.0, "user.updated within 1 s")
    print(f"LDAP modify on Samba AD to verified webhook: {(time.monotonic() - started) * 1000:.0f} ms")
    assert updated[0]["data"]["title"] == "Codebreaker"
    assert updated[0]["previous_attributes"]["title"].startswith("Cryptanalyst")

    # The listener survives a quiet spell longer than the LDAP timeout (2 s here): it used to
    # end its connection then. (A spell of nothing happening: no condition to wait on.)
    await asyncio.sleep(3)
    held = (await listener.describe()).raw_description.pending_activities[0]
    assert (held.state, held.attempt) == (2, 1), held  # still the first attempt, running
    started = time.monotonic()
    assert await asyncio.to_thread(admin.modify, alan, {"title": [(ldap3.MODIFY_REPLACE, ["Father of computing"])]})
    await wait_for(lambda: route.events("user.updated")[seen + 1 :], 1.0, "user.updated after a quiet spell")

    # samba-tool writes the DC's database file directly: Samba finds such writes on its
    # own 5-second round of pending notifications.
    await asyncio.to_thread(samba_dc.tool, "user", "disable", "alan")
    disabled = await wait_for(lambda: route.events("user.updated")[seen + 2 :], 15, "the disable, announced by Samba")
    assert disabled[0]["data"]["active"] is False

    # A deletion is announced as the object's tombstone (CN=Deleted Objects).
    started = time.monotonic()
    assert await asyncio.to_thread(admin.delete, alan)
    deleted = await wait_for(lambda: route.events("user.deleted"), 1.0, "user.deleted within 1 s")
    print(f"LDAP delete on Samba AD to verified webhook: {(time.monotonic() - started) * 1000:.0f} ms")
    assert deleted[0]["data"]["username"] == "alan@example.test"
    admin.unbind()
    ours = _ldap_receiver_threads() - others
    assert ours  # the listener's connection, reading
    assert (await stack.api.delete(f"/v1/directories/{d['id']}")).status_code == 204
    assert (await listener.describe()).status.name == "TERMINATED"
    # Its connection closes and its reading thread ends (it once spun on the closed socket).
    await wait_for(lambda: not any(t.is_alive() for t in ours), 15, "the listener's LDAP thread to end")
