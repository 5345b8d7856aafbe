"""Deletion protection: a pass that would delete too much holds the deletions for an operator."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import unique
from tests.support.e2e_helpers import (
    all_events,
    awaiting_approval,
    connect_directory,
    count_types,
    run_cli,
    sync,
    sync_state,
    wait_delivered,
)
from tests.support.slapd import SUFFIX, ldap_tool
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def request(stack, directory_id: str, mode: str = "incremental") -> None:
    r = await stack.api.post(f"/v1/directories/{directory_id}/sync", params={"mode": mode})
    assert r.status_code == 202, r.text


async def idle(stack, directory_id: str) -> bool:
    return (await sync_state(stack, directory_id))["workflow_status"] == "COMPLETED"


@pytest.mark.timeout(240)
async def test_mass_deletion_waits_for_approval(stack, slapd, receiver, tmp_path):
    conn = await connect_directory(stack, slapd, receiver, 1000, 0)
    await request(stack, conn.id, "full")
    await wait_for(lambda: idle(stack, conn.id), 120, "the first full pass")
    before = len(await wait_delivered(stack, conn, 120))

    # 60 % of the directory disappears: above min(500, 10 % of 1000) = 100.
    await asyncio.to_thread(ldap_tool, "ldapdelete", slapd, "".join(conn.user_dn(i) + "\n" for i in range(600)))
    await request(stack, conn.id)
    s = await wait_for(lambda: awaiting_approval(stack, conn.id), 60, "the pass to hold its deletions")
    assert "600" in s["error"]
    held = (await stack.api.get(f"/v1/directories/{conn.id}/deletions")).json()
    assert held["awaiting_approval"] and held["users"] == 600 and len(held["sample"]) == 20
    assert len(await all_events(stack, conn.id)) == before  # nothing committed for the deletions
    assert len((await stack.api.get(f"/v1/directories/{conn.id}/users", params={"limit": 1000})).json()["data"]) == 1000

    # Rejected: nothing is deleted, and the next pass holds them again (not skipped).
    r = await stack.api.post(f"/v1/directories/{conn.id}/deletions/reject")
    assert r.status_code == 200 and r.json()["outcome"].startswith("rejected")
    await wait_for(lambda: idle(stack, conn.id), 30, "the workflow to finish")
    assert len(await all_events(stack, conn.id)) == before
    again = await stack.api.post(f"/v1/directories/{conn.id}/deletions/reject")
    assert again.status_code == 409 and "no deletions are awaiting" in again.text
    await request(stack, conn.id)
    await wait_for(lambda: awaiting_approval(stack, conn.id), 60, "the next pass to hold them again")

    # Approved, through the CLI: every deletion reaches the receiver.
    out = await run_cli(stack, tmp_path, "directories", "deletions", conn.id, "--approve")
    assert "approved" in out, out
    await wait_for(lambda: idle(stack, conn.id), 60, "the workflow to finish")
    events = (await wait_delivered(stack, conn, 120))[before:]
    assert count_types(events)["user.deleted"] == 600
    users = (await stack.api.get(f"/v1/directories/{conn.id}/users", params={"limit": 1000})).json()["data"]
    assert len(users) == 400


async def test_small_deletions_go_through(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 30, 0)
    await request(stack, conn.id, "full")
    await wait_for(lambda: idle(stack, conn.id), 60, "the full pass")
    before = len(await wait_delivered(stack, conn))
    await asyncio.to_thread(ldap_tool, "ldapdelete", slapd, conn.user_dn(0) + "\n" + conn.user_dn(1) + "\n")
    await request(stack, conn.id)
    await wait_for(lambda: idle(stack, conn.id), 60, "the pass")
    events = (await wait_delivered(stack, conn))[before:]
    assert count_types(events)["user.deleted"] == 2  # 2 <= ceil(10 % of 30)


async def test_a_directory_pointed_at_an_empty_base_deletes_nothing_and_says_why(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 20, 0)
    await request(stack, conn.id, "full")
    await wait_for(lambda: idle(stack, conn.id), 60, "the full pass")
    before = len(await wait_delivered(stack, conn))
    empty = unique("empty")
    await asyncio.to_thread(
        ldap_tool, "ldapadd", slapd, f"dn: ou={empty},{SUFFIX}\nobjectClass: organizationalUnit\nou: {empty}\n"
    )
    # An operator's slip: the user base now names an OU that exists but holds nobody.
    r = await stack.api.patch(f"/v1/directories/{conn.id}", json={"ldap": {"user_base_dn": f"ou={empty},{SUFFIX}"}})
    assert r.status_code == 200, r.text
    status = await sync(stack, conn.id, "full")
    run = status["last_run"]
    assert run["status"] == "succeeded" and run["counts"]["users_read"] == 0
    assert "the source returned no users; no user was deleted" in run["counts"]["warnings"]
    users = (await stack.api.get(f"/v1/directories/{conn.id}/users", params={"limit": 100})).json()["data"]
    assert len(users) == 20
    assert len(await all_events(stack, conn.id)) == before  # not even a directory.sync_completed
