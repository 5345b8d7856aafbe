"""OpenLDAP in real time: the syncrepl listener turns an `ldapmodify` into a delivered
event within a second; a restarted worker resumes from the stored cookie."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.e2e_helpers import connect_directory, listening, sync, wait_delivered
from tests.support.histories import record
from tests.support.slapd import ldap_tool
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def test_a_change_reaches_the_receiver_within_a_second(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 5, 1, ldap_overrides={"live": True})
    await sync(stack, conn.id, "full")
    first = await wait_delivered(stack, conn)
    cursor = (await stack.api.get(f"/v1/directories/{conn.id}")).json()["cursor"]
    assert cursor["sync_users"].startswith("rid=")  # incremental passes ride syncrepl from here
    listener = stack.client.get_workflow_handle(f"ldaplisten/{conn.id}")
    # No pass has run by itself so far (the listener waits for the first pass's cookie);
    # a first change shows it listening, unbounded; the second is timed.
    assert len(conn.route.events()) == len(first)
    await asyncio.to_thread(
        ldap_tool, "ldapmodify", slapd, f"dn: {conn.user_dn(3)}\nchangetype: modify\nreplace: title\ntitle: Warm-up\n"
    )
    await wait_for(lambda: conn.route.events("user.updated"), 30, "the listener's first pass")

    started = time.monotonic()
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.user_dn(1)}\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n",
    )
    updated = await wait_for(lambda: conn.route.events("user.updated")[1:], 1.0, "user.updated within 1 s")
    print(f"ldapmodify to verified webhook: {(time.monotonic() - started) * 1000:.0f} ms")
    assert updated[0]["data"]["title"] == "Staff Engineer"
    assert updated[0]["previous_attributes"] == {"title": "Engineer"}

    await asyncio.to_thread(ldap_tool, "ldapdelete", slapd, "", conn.user_dn(2))
    deleted = await wait_for(lambda: conn.route.events("user.deleted"), 5, "user.deleted")
    assert deleted[0]["data"]["username"] == "user00002"

    # A new listener (as after a worker restart) starts from the stored cookie: a pass
    # runs, and emits nothing old.
    before = len(conn.route.events())
    await listener.terminate(reason="test: restart")
    from dirhook import sync_control
    from dirhook.sync_control import DirectoryRef

    d = conn.directory
    await sync_control.start_listener(
        stack.client, stack.settings, DirectoryRef(d["id"], d["organization_id"], d["name"], "ldap")
    )
    await wait_for(lambda: listening(stack.client.get_workflow_handle(f"ldaplisten/{conn.id}")), 30, "relisten")
    status = await sync(stack, conn.id)
    assert status["last_run"]["counts"]["events_total"] == 0
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.user_dn(4)}\nchangetype: modify\nreplace: title\ntitle: After restart\n",
    )
    # (The deletion pass's directory.sync_completed may arrive after ``before`` was counted.)
    await wait_for(
        lambda: [e for e in conn.route.events()[before:] if e["type"] == "user.updated"],
        30,
        "the restarted listener's pass",
    )
    after = conn.route.events()[before:]
    assert [(e["type"], e["data"].get("username")) for e in after if e["type"] != "directory.sync_completed"] == [
        ("user.updated", "user00004")
    ]  # the new change only: nothing old again
    # Deleting the directory stops its listener and any pass it queued: later tests count
    # the process's sync metrics and must not see this directory's passes.
    await record(stack.client, f"ldaplisten/{conn.id}", "ldap_listener")
    assert (await stack.api.delete(f"/v1/directories/{conn.id}")).status_code == 204
    gone = stack.client.get_workflow_handle(f"ldaplisten/{conn.id}")
    assert (await gone.describe()).status.name == "TERMINATED"
