"""Entra ID through Microsoft Graph delta queries, against the local Graph (tests/support/graph.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from temporalio.client import WorkflowFailureError

from tests.support.e2e_helpers import canonical, connect_directory, sync
from tests.support.entra_helpers import entra_directory, graph_user
from tests.support.scim_helpers import summary
from tests.support.slapd import expected_memberships
from tests.support.wait import wait_for

SQLITE_ONLY = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


async def emitted(stack, directory_id: str) -> list[dict]:
    events, after = [], None
    while True:
        params = {"directory_id": directory_id, "limit": 1000, **({"after": after} if after else {})}
        page = (await stack.api.get("/v1/events", params=params)).json()
        events += page["data"]
        if not page["has_more"]:
            return events
        after = page["next_cursor"]


@SQLITE_ONLY
@pytest.mark.timeout(240)
async def test_a_full_sync_delivers_what_ldap_delivers_for_the_same_people(stack, graph, slapd, receiver):
    n_users, n_groups = 1000, 50
    tenant = graph.new_tenant()
    ids = [graph_user(tenant, i) for i in range(n_users)]
    for g in range(n_groups):
        gid = tenant.put_group(displayName=f"group{g:03d}", description=f"Group {g}")
        for i in range(n_users):
            if i % n_groups == g or (i % 3 == 0 and (i + 1) % n_groups == g):
                tenant.set_member(gid, ids[i])
    entra, _endpoint, entra_route = await entra_directory(stack, graph, receiver, tenant)
    ldap = await connect_directory(stack, slapd, receiver, n_users, n_groups)
    for directory_id in (entra["id"], ldap.id):
        status = await sync(stack, directory_id, "full", timeout=180)
        assert status["last_run"]["status"] == "succeeded", status
    total = n_users + n_groups + expected_memberships(n_users, n_groups) + 1
    await wait_for(lambda: len(entra_route.events()) == total, 120, f"{total} Entra events at the receiver")
    from_entra, from_ldap = await emitted(stack, entra["id"]), await emitted(stack, ldap.id)
    assert len(from_entra) == len(from_ldap) == total
    assert sorted(map(canonical, from_entra)) == sorted(map(canonical, from_ldap))
    sample = next(e for e in from_entra if e["type"] == "user.created")["data"]
    assert sample["raw_attributes"]["employeeId"] and sample["external_id"] in ids


async def round_(stack, directory_id: str, route, before: int, n: int) -> list[tuple]:
    """An incremental pass: the n change events it sent (after them, the pass's
    directory.sync_completed when there were any), and nothing else."""
    status = await sync(stack, directory_id)
    assert status["last_run"]["status"] == "succeeded", status
    total = before + n + (1 if n else 0)
    await wait_for(lambda: len(route.events()) >= total, 30, f"{n} more events")
    got = await emitted(stack, directory_id)
    assert len(got) == total, [summary([e]) for e in got[before:]]  # nothing else was emitted
    new = route.events()[before:]
    if n:
        assert new[-1]["type"] == "directory.sync_completed"
    return [(*summary([e])[0], e.get("previous_attributes")) for e in new[:n]]


async def test_incremental_rounds_emit_exactly_the_changes(stack, graph, receiver):
    tenant = graph.new_tenant()
    ids = [graph_user(tenant, i) for i in range(5)]
    team = tenant.put_group(displayName="team", description="the team")
    for i in (0, 1, 2):
        tenant.set_member(team, ids[i])
    directory, _endpoint, route = await entra_directory(stack, graph, receiver, tenant)
    d = directory["id"]
    await sync(stack, d, "full")
    seen = await wait_for(lambda: len(route.events()) == 10 and 10, 30, "the first round")  # 5+1+3+1
    cursor = (await stack.api.get(f"/v1/directories/{d}")).json()["cursor"]
    assert "$deltatoken=" in cursor["users"] and "$deltatoken=" in cursor["groups"]

    assert await round_(stack, d, route, seen, 0) == []  # an empty round emits nothing…
    kept = (await stack.api.get(f"/v1/directories/{d}")).json()["cursor"]
    assert kept["users"].split("?")[0] == cursor["users"].split("?")[0] and "$deltatoken=" in kept["users"]

    tenant.put_user(id=ids[3], displayName="User Three Renamed")
    assert await round_(stack, d, route, seen, 1) == [("user.updated", "user00003", {"display_name": "User 3"})]
    seen += 2
    tenant.put_user(id=ids[3], accountEnabled=False)
    assert await round_(stack, d, route, seen, 1) == [("user.updated", "user00003", {"active": True})]
    seen += 2
    tenant.remove_user(ids[4], reason="changed")  # soft delete: deactivated, restorable
    assert await round_(stack, d, route, seen, 1) == [("user.updated", "user00004", {"active": True})]
    seen += 2
    tenant.set_member(team, ids[3])
    got = await round_(stack, d, route, seen, 2)
    assert got == [("user.updated", "user00003", {"groups": []}), ("group.user_added", "team", "user00003", None)]
    seen += 3
    tenant.set_member(team, ids[1], False)
    got = await round_(stack, d, route, seen, 2)
    assert (got[0][:2], got[1]) == (("user.updated", "user00001"), ("group.user_removed", "team", "user00001", None))
    assert [g["name"] for g in got[0][2]["groups"]] == ["team"]
    seen += 3
    tenant.remove_user(ids[0], reason="deleted")  # permanent: a member of team
    got = await round_(stack, d, route, seen, 2)
    assert got == [("group.user_removed", "team", "user00000", None), ("user.deleted", "user00000", None)]


@SQLITE_ONLY
async def test_a_group_scope_syncs_those_groups_and_their_members_only(stack, graph, receiver):
    tenant = graph.new_tenant()
    ids = [graph_user(tenant, i) for i in range(5)]
    chosen, other = tenant.put_group(displayName="chosen"), tenant.put_group(displayName="other")
    for i in (0, 1):
        tenant.set_member(chosen, ids[i])
    tenant.set_member(other, ids[2])
    directory, _endpoint, route = await entra_directory(stack, graph, receiver, tenant, group_ids=[chosen])
    d = directory["id"]
    await sync(stack, d, "full")
    first = await wait_for(lambda: len(route.events()) >= 6 and route.events(), 30, "the first round")
    assert sorted(summary(first)) == sorted(
        [
            ("group.created", "chosen"),
            ("user.created", "user00000"),
            ("user.created", "user00001"),
            ("group.user_added", "chosen", "user00000"),
            ("group.user_added", "chosen", "user00001"),
            ("directory.sync_completed",),
        ]
    )
    seen = len(first)
    tenant.set_member(chosen, ids[3])  # joins without changing: read by itself
    tenant.put_user(id=ids[4], jobTitle="Out of scope")  # changes, but no selected group holds it
    got = await round_(stack, d, route, seen, 2)
    assert [g[:3] if g[0] == "group.user_added" else g[:2] for g in got] == [
        ("user.created", "user00003"),
        ("group.user_added", "chosen", "user00003"),
    ]
    seen += 3
    tenant.set_member(chosen, ids[0], False)  # leaves the scope
    got = await round_(stack, d, route, seen, 2)
    assert got == [("group.user_removed", "chosen", "user00000", None), ("user.deleted", "user00000", None)]


@SQLITE_ONLY
async def test_an_expired_delta_token_resyncs_and_sends_only_real_differences(stack, graph, receiver):
    tenant = graph.new_tenant()
    ids = [graph_user(tenant, i) for i in range(20)]
    directory, _endpoint, route = await entra_directory(stack, graph, receiver, tenant)
    d = directory["id"]
    await sync(stack, d, "full")
    await wait_for(lambda: len(route.events()) == 21, 30, "the first round")
    tenant.put_user(id=ids[7], jobTitle="Architect")
    tenant.remove_user(ids[8], reason="deleted")
    tenant.expire_tokens()
    status = await sync(stack, d)
    run = status["last_run"]
    assert run["status"] == "succeeded" and run["counts"]["full"] is True and run["counts"]["users_read"] == 19
    assert any("410" in w for w in run["counts"]["warnings"])
    assert any(code == 410 for _t, code, _url in tenant.requests)
    events = await wait_for(lambda: len(route.events()) == 24 and route.events(), 30, "the differences")
    assert [summary([e])[0] for e in events[21:]] == [
        ("user.updated", "user00007"),
        ("user.deleted", "user00008"),
        ("directory.sync_completed",),
    ]
    assert events[21]["previous_attributes"] == {"title": "Engineer"}


@SQLITE_ONLY
async def test_throttling_is_waited_out(stack, graph, receiver):
    tenant = graph.new_tenant()
    graph_user(tenant, 1)
    directory, _endpoint, route = await entra_directory(stack, graph, receiver, tenant)
    tenant.throttled, tenant.retry_after = 1, 2
    status = await sync(stack, directory["id"], "full")
    assert status["last_run"]["status"] == "succeeded", status
    assert [code for _at, code, _url in tenant.requests[:2]] == [429, 200]
    waited = tenant.requests[1][0] - tenant.requests[0][0]
    assert waited >= 2.0, waited  # Retry-After honoured
    await wait_for(lambda: len(route.events()) == 2, 30, "the user and the pass")


@SQLITE_ONLY
async def test_bad_credentials_fail_clearly_once_and_change_nothing(stack, graph, receiver, tmp_path):
    from tests.support.e2e_helpers import run_cli

    tenant = graph.new_tenant()
    graph_user(tenant, 1)
    directory, _endpoint, route = await entra_directory(stack, graph, receiver, tenant, secret="not-the-secret")
    r = await stack.api.post(f"/v1/directories/{directory['id']}/sync", params={"mode": "full"})
    assert r.status_code == 202
    handle = stack.client.get_workflow_handle(r.json()["workflow_id"], run_id=r.json()["run_id"])
    with pytest.raises(WorkflowFailureError):  # the pass fails at once: no retries of a refused secret
        await asyncio.wait_for(handle.result(), 60)
    status = (await stack.api.get(f"/v1/directories/{directory['id']}/sync")).json()
    assert "AADSTS7000215" in status["error"] and "credentials" in status["error"], status
    assert status["last_run"]["status"] == "failed"
    assert tenant.token_requests == 1 and tenant.requests == []  # no retry storm, nothing read
    assert (await stack.api.get(f"/v1/directories/{directory['id']}/users")).json()["data"] == []
    assert await emitted(stack, directory["id"]) == [] and route.events() == []
    runs = await run_cli(stack, tmp_path, "directories", "show", directory["id"])
    assert "AADSTS7000215" in runs or "credentials" in runs


@SQLITE_ONLY
async def test_a_certificate_credential_works_and_a_foreign_one_is_refused(stack, graph, receiver):
    tenant = graph.new_tenant()
    graph_user(tenant, 1)
    pem = tenant.add_certificate()
    directory, _endpoint, _route = await entra_directory(
        stack, graph, receiver, tenant, secret=pem, credential="certificate"
    )
    status = await sync(stack, directory["id"], "full")
    assert status["last_run"]["status"] == "succeeded" and status["last_run"]["counts"]["users_read"] == 1
    assert pem.split("-----")[2].strip()[:40] not in (await stack.api.get(f"/v1/directories/{directory['id']}")).text

    stranger = graph.new_tenant().add_certificate()  # a certificate the app does not know
    other, _e, _r = await entra_directory(stack, graph, receiver, tenant, secret=stranger, credential="certificate")
    r = await stack.api.post(f"/v1/directories/{other['id']}/sync", params={"mode": "full"})
    handle = stack.client.get_workflow_handle(r.json()["workflow_id"], run_id=r.json()["run_id"])
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)
    error = (await stack.api.get(f"/v1/directories/{other['id']}/sync")).json()["error"]
    assert "AADSTS700027" in error


@SQLITE_ONLY
async def test_a_new_secret_by_patch_mends_a_refused_one(stack, graph, receiver):
    tenant = graph.new_tenant()
    graph_user(tenant, 1)
    directory, _endpoint, _route = await entra_directory(stack, graph, receiver, tenant, secret="wrong")
    path = f"/v1/directories/{directory['id']}"
    for patch, status, needle in (
        ({"entra": {"graph_base_url": "http://graph.example/v1.0"}}, 422, "https"),
        ({"entra": {"credential": "password"}}, 422, "credential"),
        # Well-formed, but for another provider: a conflict with this directory.
        ({"ldap": {"url": "ldap://x"}}, 409, "ldap"),
        ({"bind_password": "x"}, 409, "bind_password"),
        # Where the stored secret goes: each needs the secret in the same request.
        ({"entra": {"tenant_id": "00000000-0000-0000-0000-00000000beef"}}, 422, "client_secret"),
        ({"entra": {"client_id": "00000000-0000-0000-0000-00000000beef"}}, 422, "client_secret"),
        ({"entra": {"authority_host": "https://login.attacker.example"}}, 422, "client_secret"),
        ({"entra": {"graph_base_url": "https://graph.attacker.example/v1.0"}}, 422, "client_secret"),
    ):
        r = await stack.api.patch(path, json=patch)
        assert r.status_code == status and needle in r.text, r.text
    r = await stack.api.patch(path, json={"client_secret": tenant.client_secret, "entra": {"only_enabled": True}})
    assert r.status_code == 200 and r.json()["config"]["only_enabled"] is True
    assert tenant.client_secret not in r.text
    status = await sync(stack, directory["id"], "full")
    assert status["last_run"]["status"] == "succeeded" and status["last_run"]["counts"]["users_read"] == 1


@SQLITE_ONLY
async def test_the_cli_connects_a_tenant(stack, graph, receiver, tmp_path):
    import re

    from tests.support.e2e_helpers import run_cli

    tenant = graph.new_tenant()
    graph_user(tenant, 1)
    out = await run_cli(
        stack,
        tmp_path,
        "directories",
        "add-entra",
        "--name",
        "Contoso",
        "--tenant-id",
        tenant.tenant_id,
        "--client-id",
        tenant.client_id,
        "--authority-host",
        graph.authority,
        "--graph-base-url",
        graph.graph_url,
        env={"DIRHOOK_ENTRA_CLIENT_SECRET": tenant.client_secret},
    )
    directory_id = re.search(r"(dir_\w+)", out).group(1)
    shown = (await stack.api.get(f"/v1/directories/{directory_id}")).json()
    assert shown["provider"] == "entra" and shown["has_client_secret"] and tenant.client_secret not in str(shown)
    status = await sync(stack, directory_id, "full")
    assert status["last_run"]["counts"]["users_read"] == 1


@SQLITE_ONLY
async def test_a_worker_serving_ldap_directories_never_imports_msgraph_or_google(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 3, 1)
    script = f"""
import asyncio, sys
from dirhook.config import Settings
from dirhook.db.engine import make_sessionmaker, open_database
from dirhook.db.schema import Directory
from dirhook.providers.factory import build_source
from dirhook.sync import SyncEngine
import dirhook.temporal as t
from workers import build_workers, close_all

async def main():
    settings = Settings(database_url={stack.settings.sqlalchemy_url!r}, temporal_address={stack.settings.temporal_address!r},
                        task_queue="no-msgraph-check", encryption_keys={{"test-k1": {stack.settings.encryption_keys["test-k1"].get_secret_value()!r}}})
    client = await t.connect(settings)
    workers, closers = build_workers(client, settings)
    sessions = make_sessionmaker(open_database(settings))
    with sessions() as s:
        directory = s.get(Directory, {conn.id!r})
        source = build_source(directory, settings, sessions)
    source.connect()
    result = SyncEngine(sessions, directory.id, source.mapping).run(source.changes(None, full=True))
    source.close()
    await close_all(closers)
    assert result.users_read == 3, result
    sdks = ("msgraph", "msgraph_core", "kiota_http", "azure", "googleapiclient", "google_auth_httplib2", "httplib2")
    print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in sdks or m.startswith("google.auth")))

asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    assert "LOADED []" in out.decode(), out.decode()[-2000:]
