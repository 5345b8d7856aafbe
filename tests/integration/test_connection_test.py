"""A directory is tested when it is created (issue 17, item 5), and its source's health is
told apart from recompute passes (item 2): against the real slapd."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import unique
from tests.support.e2e_helpers import ldap_body, run_cli
from tests.support.ports import free_port
from tests.support.slapd import ROOT_DN, ROOT_PW, ldap_tool, people_ldif
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def directory_count(stack) -> int:
    return len((await stack.api.get("/v1/directories")).json())


async def test_a_directory_the_source_refuses_is_not_created(stack, slapd):
    ou = unique("probe-")
    await asyncio.to_thread(ldap_tool, "ldapadd", slapd, people_ldif(ou, 12, 3))
    before = await directory_count(stack)
    refusals = {
        "wrong password": ({"bind_password": "not-the-password"}, "invalidCredentials"),
        "missing base": (
            {"ldap": ldap_body(slapd, ou, user_base_dn=f"ou=nobody,{ROOT_DN.split(',', 1)[1]}")},
            "does not exist",
        ),
        "dead port": ({"ldap": ldap_body(slapd, ou, url=f"ldap://127.0.0.1:{free_port()}")}, "cannot reach"),
    }
    for what, (change, says) in refusals.items():
        body = {"name": what, "ldap": ldap_body(slapd, ou), "bind_password": ROOT_PW, **change}
        r = await stack.api.post("/v1/directories", params={"test": "true"}, json=body)
        assert r.status_code == 409 and says in r.json()["detail"], (what, r.text)
        assert "nothing was created" in r.json()["detail"]
    assert await directory_count(stack) == before

    r = await stack.api.post(
        "/v1/directories",
        params={"test": "true"},
        json={"name": "ok", "ldap": ldap_body(slapd, ou), "bind_password": ROOT_PW},
    )
    assert r.status_code == 201, r.text
    tested = (await stack.api.post(f"/v1/directories/{r.json()['id']}/test")).json()
    assert tested["ok"] and tested["users"] == 12 and tested["groups"] == 3, tested
    assert tested["summary"] == "12 users and 3 groups would be read"


async def test_the_cli_tests_first_and_says_what_it_found(stack, slapd, tmp_path):
    ou = unique("probe-cli-")
    await asyncio.to_thread(ldap_tool, "ldapadd", slapd, people_ldif(ou, 5, 2))
    body = ldap_body(slapd, ou)
    common = ["--url", body["url"], "--bind-dn", ROOT_DN, "--user-base-dn", body["user_base_dn"]]
    common += ["--group-base-dn", body["group_base_dn"]]

    async def add_ldap(name: str, password: str, code: int = 0) -> str:
        env = {"DIRHOOK_LDAP_BIND_PASSWORD": password}
        return await run_cli(stack, tmp_path, "directories", "add-ldap", "--name", name, *common, code=code, env=env)

    out = await add_ldap("wrong", "wrong", code=1)
    assert "invalidCredentials" in out and "nothing was created" in out
    out = await add_ldap("right", ROOT_PW)
    assert "connection tested: 5 users and 2 groups would be read" in out
    directory_id = out.split("directory ", 1)[1].split()[0]
    out = await run_cli(stack, tmp_path, "directories", "test", directory_id)
    assert "ok: 5 users and 2 groups would be read" in out

    # Never read: a recompute pass succeeds, the source is still "never synced".
    r = await stack.api.post(f"/v1/directories/{directory_id}/sync", params={"mode": "recompute"})
    assert r.status_code == 202

    async def recomputed():
        s = (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()
        return s if s["state"] == "succeeded" else None

    status = await wait_for(recomputed, 60, "the recompute pass")
    assert status["source"]["state"] == "never_synced"
    assert "%2F" in status["temporal_ui_url"]
    out = await run_cli(stack, tmp_path, "directories", "show", directory_id)
    assert "source: never synced" in out

    # Pointed at a port nobody answers on, a pass fails and the source reads "failing".
    dead = {"ldap": {"url": f"ldap://127.0.0.1:{free_port()}"}, "bind_password": ROOT_PW}
    r = await stack.api.patch(f"/v1/directories/{directory_id}", json=dead)
    assert r.status_code == 200, r.text
    await stack.api.post(f"/v1/directories/{directory_id}/sync", params={"mode": "full"})

    async def failing():
        s = (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()
        return s if s["source"]["state"] == "failing" else None

    status = await wait_for(failing, 90, "the failed pass")
    assert "cannot reach" in status["source"]["last_error"]
