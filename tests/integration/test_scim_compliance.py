"""scim2-cli's compliance suite (scim2-tester) against a SCIM directory, every check a
SUCCESS; and the bearer token guarding it."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique

SCIM2 = str(Path(sys.executable).parent / "scim2")


async def scim_directory(stack, **extra) -> dict:
    r = await stack.api.post("/v1/directories", json={"name": unique("scim-"), "provider": "scim", **extra})
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["scim_token"].startswith("dhscim_") and d["scim_base_url"].endswith(f"/scim/v2/{d['id']}")
    return d


@pytest.mark.timeout(180)
async def test_scim2_cli_reports_every_check_as_success(stack):
    d = await scim_directory(stack)
    proc = await asyncio.create_subprocess_exec(
        SCIM2,
        "--url",
        d["scim_base_url"],
        "test",
        env={"SCIM_CLI_HEADERS": f"Authorization: Bearer {d['scim_token']}", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    text = out.decode()
    statuses = re.findall(r"^(SUCCESS|ERROR|CRITICAL|WARNING|SKIPPED|FAILED)\b", text, flags=re.M)
    print(f"scim2-tester: {len(statuses)} checks, {statuses.count('SUCCESS')} SUCCESS")
    assert statuses.count("SUCCESS") >= 135, text[-3000:]
    assert set(statuses) == {"SUCCESS"}, "\n".join(
        line for line in text.splitlines() if line and not line.startswith(("SUCCESS", "  "))
    )


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "other directory"])
async def test_scim_needs_the_directorys_own_token(stack, header):
    d = await scim_directory(stack)
    other = await scim_directory(stack)
    headers = {}
    if header == "other directory":
        headers["authorization"] = f"Bearer {other['scim_token']}"
    elif header:
        headers["authorization"] = header
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory@example.com"}
    async with httpx.AsyncClient(timeout=30) as client:
        for method, path, kw in (
            ("GET", "/Users", {}),
            ("POST", "/Users", {"json": body}),
            ("GET", "/ServiceProviderConfig", {}),
        ):
            r = await client.request(method, d["scim_base_url"] + path, headers=headers, **kw)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        good = {"authorization": f"Bearer {d['scim_token']}"}
        listed = (await client.get(d["scim_base_url"] + "/Users", headers=good)).json()
    assert listed["totalResults"] == 0  # nothing was written
    users = (await stack.api.get(f"/v1/directories/{d['id']}/users")).json()
    assert users["data"] == []


async def test_a_rotated_token_replaces_the_old_one_at_once(stack):
    d = await scim_directory(stack)
    r = await stack.api.post(f"/v1/directories/{d['id']}/scim-token")
    assert r.status_code == 200
    new = r.json()["scim_token"]
    async with httpx.AsyncClient(timeout=30) as client:
        old = await client.get(d["scim_base_url"] + "/Users", headers={"authorization": f"Bearer {d['scim_token']}"})
        fresh = await client.get(d["scim_base_url"] + "/Users", headers={"authorization": f"Bearer {new}"})
    assert old.status_code == 401 and fresh.status_code == 200
    shown = await stack.api.get(f"/v1/directories/{d['id']}")
    assert new not in shown.text and d["scim_token"] not in shown.text


async def test_the_cli_makes_a_scim_directory_whose_token_works(stack, tmp_path):
    from tests.support.e2e_helpers import run_cli

    out = await run_cli(stack, tmp_path, "directories", "add-scim", "--name", unique("cli-scim-"))
    url = re.search(r"tenant URL\s+(\S+)", out).group(1)
    token = re.search(r"(dhscim_\S+)", out).group(1)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(url + "/Users", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["totalResults"] == 0
    directory_id = url.rsplit("/", 1)[-1]
    out = await run_cli(stack, tmp_path, "directories", "rotate-scim-token", directory_id)
    assert token not in out and re.search(r"dhscim_\S+", out)


async def test_a_scim_directory_patches_its_shared_fields_only(stack):
    d = await scim_directory(stack)
    for patch in ({"client_secret": "x"}, {"ldap": {"url": "ldap://x"}}, {"entra": {"tenant_id": "t"}}):
        r = await stack.api.patch(f"/v1/directories/{d['id']}", json=patch)
        assert r.status_code == 409 and "takes no" in r.text, r.text
    r = await stack.api.patch(f"/v1/directories/{d['id']}", json={"name": "Renamed IdP"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed IdP" and r.json()["config"] == {"flavour": "scim"}
