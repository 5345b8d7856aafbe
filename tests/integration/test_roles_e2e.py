"""Group-based roles, attribute mapping and nested groups, end to end on the real slapd."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.e2e_helpers import all_events, connect_directory, count_types, run_cli, sync, wait_delivered
from tests.support.slapd import ldap_tool


async def wait_recompute(stack, directory_id: str) -> dict:
    """The recompute pass the API queued: wait for the sync workflow to finish it."""
    handle = stack.client.get_workflow_handle(f"dirsync/{directory_id}")
    await asyncio.wait_for(handle.result(), 60)
    return (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()


async def new_events(stack, conn, before: int) -> list[dict]:
    events = (await wait_delivered(stack, conn))[before:]
    return [e for e in events if e["type"] != "directory.sync_completed"]


def slugs(user: dict) -> list[str]:
    return [r["slug"] for r in user["roles"]]


async def test_roles_follow_membership_nesting_and_mappings(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 9, 3)
    org = conn.directory["organization_id"]
    for slug, priority, default in (("admin", 30, False), ("engineer", 20, False), ("member", 0, True)):
        r = await stack.api.post(
            "/v1/roles",
            json={
                "slug": f"{slug}-{conn.ou}",
                "name": slug,
                "priority": priority,
                "is_default": default,
                "organization_id": org,
            },
        )
        assert r.status_code == 201, r.text
    admin, engineer, member = (f"{s}-{conn.ou}" for s in ("admin", "engineer", "member"))
    r = await stack.api.post(
        f"/v1/directories/{conn.id}/role-mappings", json={"role": engineer, "match": "name", "pattern": "group00[0]"}
    )
    assert r.status_code == 201, r.text
    await wait_recompute(stack, conn.id)
    await sync(stack, conn.id, "full")
    events = await wait_delivered(stack, conn)
    users = {e["data"]["username"]: e["data"] for e in events if e["type"] == "user.created"}
    # user i is in group i % 3; every third user also in group (i + 1) % 3
    assert slugs(users["user00000"]) == [engineer] and users["user00000"]["role"] == {"slug": engineer}
    assert users["user00000"]["roles"][0]["source_groups"] == [
        next(g["id"] for g in users["user00000"]["groups"] if g["name"] == "group000")
    ]
    assert slugs(users["user00001"]) == [member]  # the default role: in no mapped group
    before = len(events)

    # Add user 1 to the mapped group: the membership event and the user's new roles.
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.group_dn(0)}\nchangetype: modify\nadd: member\nmember: {conn.user_dn(1)}\n",
    )
    await sync(stack, conn.id)
    changes = await new_events(stack, conn, before)
    assert count_types(changes) == {"user.updated": 1, "group.user_added": 1}
    updated = next(e for e in changes if e["type"] == "user.updated")
    assert updated["data"]["username"] == "user00001" and slugs(updated["data"]) == [engineer]
    assert [r["slug"] for r in updated["previous_attributes"]["roles"]] == [member]
    assert updated["previous_attributes"]["role"] == {"slug": member}
    before += len(changes) + 1

    # Remove them again: the role is revoked the same way.
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.group_dn(0)}\nchangetype: modify\ndelete: member\nmember: {conn.user_dn(1)}\n",
    )
    await sync(stack, conn.id)
    changes = await new_events(stack, conn, before)
    assert count_types(changes) == {"user.updated": 1, "group.user_removed": 1}
    updated = next(e for e in changes if e["type"] == "user.updated")
    assert slugs(updated["data"]) == [member] and [r["slug"] for r in updated["previous_attributes"]["roles"]] == [
        engineer
    ]
    before += len(changes) + 1

    # Nest group002 inside the mapped group000: group002's members gain engineer, inherited.
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.group_dn(0)}\nchangetype: modify\nadd: member\nmember: {conn.group_dn(2)}\n",
    )
    await sync(stack, conn.id)
    changes = await new_events(stack, conn, before)
    # group002's members are users 2, 5 and 8 (user i is in group i % 3; users 0, 3 and 6
    # also join the next group, group001).
    gained = {e["data"]["username"]: e["data"] for e in changes if e["type"] == "user.updated"}
    assert count_types(changes) == {"user.updated": 3}
    assert set(gained) == {"user00002", "user00005", "user00008"}, set(gained)
    for u in gained.values():
        assert engineer in slugs(u)
        inherited = [g for g in u["groups"] if g["name"] == "group000"]
        assert inherited and inherited[0]["direct"] is False
    before += len(changes) + 1

    # A new mapping through the API: only the users it affects get user.updated, no sync needed.
    r = await stack.api.post(
        f"/v1/directories/{conn.id}/role-mappings", json={"role": admin, "match": "name", "pattern": "group001"}
    )
    assert r.status_code == 201
    mapping_id = r.json()["id"]
    await wait_recompute(stack, conn.id)
    changes = await new_events(stack, conn, before)
    # group001: users with i % 3 == 1, plus users 0, 3, 6 (every third user is also in the next group)
    expected = {f"user{i:05d}" for i in range(9) if i % 3 in (0, 1)}
    changed = {e["data"]["username"] for e in changes}
    assert count_types(changes) == {"user.updated": len(changed)}
    assert changed == expected
    for e in changes:
        assert e["data"]["role"] == {"slug": admin} and list(e["previous_attributes"]) in (["role", "roles"],)
    before += len(changes)

    # Deleting the mapping takes the role back.
    assert (await stack.api.delete(f"/v1/directories/{conn.id}/role-mappings/{mapping_id}")).status_code == 204
    await wait_recompute(stack, conn.id)
    changes = await new_events(stack, conn, before)
    assert {e["data"]["username"] for e in changes} == expected
    assert all(admin not in slugs(e["data"]) for e in changes)
    before += len(changes)

    # A nesting cycle is reported and does not hang the pass.
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.group_dn(2)}\nchangetype: modify\nadd: member\nmember: {conn.group_dn(0)}\n",
    )
    status = await sync(stack, conn.id)
    assert status["state"] == "succeeded"
    assert any("cycle" in w for w in status["last_run"]["counts"]["warnings"])


async def test_attribute_mapping_change_renormalizes_stored_users(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 4, 1)
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.user_dn(1)}\nchangetype: modify\nadd: departmentNumber\ndepartmentNumber: R&D\n",
    )
    await sync(stack, conn.id, "full")
    before = len(await wait_delivered(stack, conn))

    mapping = {
        "user": {
            "custom_attributes.employee_id": {"source": "employeeNumber"},
            "department": {"source": "departmentNumber"},
        }
    }
    r = await stack.api.patch(f"/v1/directories/{conn.id}", json={"attribute_mapping": mapping})
    assert r.status_code == 200, r.text
    await wait_recompute(stack, conn.id)
    changes = await new_events(stack, conn, before)
    assert count_types(changes) == {"user.updated": 4}
    by_user = {e["data"]["username"]: e for e in changes}
    assert by_user["user00001"]["data"]["department"] == "R&D"
    assert by_user["user00001"]["data"]["custom_attributes"] == {"employee_id": "1001"}
    assert "employeeNumber" not in by_user["user00001"]["data"]["raw_attributes"]
    assert by_user["user00000"]["data"]["department"] is None
    assert by_user["user00001"]["previous_attributes"]["department"] is None
    before += len(changes)

    # Remapping so that only department changes source: only users whose value changes get an event.
    mapping["user"]["department"] = {"source": ["departmentNumber", "ou"]}
    r = await stack.api.patch(f"/v1/directories/{conn.id}", json={"attribute_mapping": mapping})
    assert r.status_code == 200
    await wait_recompute(stack, conn.id)
    assert await new_events(stack, conn, before) == []
    # and an incremental pass afterwards finds nothing new either
    status = await sync(stack, conn.id)
    assert status["last_run"]["counts"]["events_total"] == 0


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_invalid_role_and_mapping_input_changes_nothing(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 1, 1)
    await stack.api.post("/v1/roles", json={"slug": f"ok-{conn.ou}", "name": "ok"})
    cases = [
        (
            "POST",
            f"/v1/directories/{conn.id}/role-mappings",
            {"role": "no-such-role", "match": "name", "pattern": "x"},
            404,
            "no role",
        ),
        (
            "POST",
            f"/v1/directories/{conn.id}/role-mappings",
            {"role": f"ok-{conn.ou}", "match": "name", "pattern": "eng-[abc"},
            422,
            "malformed glob",
        ),
        (
            "POST",
            f"/v1/directories/{conn.id}/role-mappings",
            {"role": f"ok-{conn.ou}", "match": "dn", "pattern": "x"},
            422,
            "match",
        ),
        (
            "PATCH",
            f"/v1/directories/{conn.id}",
            {"attribute_mapping": {"user": {"groups": {"source": "memberOf"}}}},
            422,
            "read-only",
        ),
        (
            "PATCH",
            f"/v1/directories/{conn.id}",
            {"attribute_mapping": {"user": {"roles": {"source": "x"}}}},
            422,
            "read-only",
        ),
        ("POST", "/v1/roles", {"slug": "Bad Slug", "name": "x"}, 422, "slug"),
        ("POST", "/v1/roles", {"slug": f"ok-{conn.ou}", "name": "again"}, 409, "already"),
        ("DELETE", f"/v1/directories/{conn.id}/role-mappings/rmap_nope", None, 404, "rmap_nope"),
        ("GET", "/v1/roles/role_nope", None, 404, "role_nope"),
    ]
    before = (
        (await stack.api.get(f"/v1/directories/{conn.id}/role-mappings")).json(),
        (await stack.api.get("/v1/roles")).json(),
        (await stack.api.get(f"/v1/directories/{conn.id}")).json(),
    )
    for method, path, body, status, needle in cases:
        r = (
            await stack.api.request(method, path, json=body)
            if body is not None
            else await stack.api.request(method, path)
        )
        assert r.status_code == status, (path, r.text)
        assert needle in r.text, r.text
    after = (
        (await stack.api.get(f"/v1/directories/{conn.id}/role-mappings")).json(),
        (await stack.api.get("/v1/roles")).json(),
        (await stack.api.get(f"/v1/directories/{conn.id}")).json(),
    )
    assert after == before
    assert await all_events(stack, conn.id) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_cli_manages_roles_and_mappings(stack, slapd, receiver, tmp_path):
    conn = await connect_directory(stack, slapd, receiver, 2, 1)

    async def cli(*args: str, code: int = 0) -> str:
        return await run_cli(stack, tmp_path, *args, code=code)

    slug = f"cli-{conn.ou}"
    await cli("roles", "add", slug, "--priority", "5")
    assert slug in await cli("roles", "list")
    await cli("directories", "map-role", conn.id, slug, "--group-name", "group*")
    assert "group*" in await cli("directories", "role-mappings", conn.id)
    await wait_recompute(stack, conn.id)
    await sync(stack, conn.id, "full")
    users = (await stack.api.get(f"/v1/directories/{conn.id}/users")).json()["data"]
    assert all(slugs(u) == [slug] for u in users) and len(users) == 2
    assert "exactly one" in await cli("directories", "map-role", conn.id, slug, code=2)
    assert "no role" in await cli("directories", "map-role", conn.id, "missing", "--group-id", "x", code=1)
