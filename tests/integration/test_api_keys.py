"""Organization API keys: a key sees its own organization only (404 on everything else,
exactly as if it did not exist), cannot create organizations, and stops working the
moment it is revoked."""

from __future__ import annotations

import re

import httpx
import pytest
import pytest_asyncio

from tests.conftest import API_CLIENT_LIMITS, unique
from tests.support.e2e_helpers import emit, run_cli, subscribe
from tests.support.slapd import ROOT_DN, SUFFIX
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def _organization_with_everything(stack, receiver) -> dict[str, str]:
    """An organization with one of each resource, and their IDs by path parameter name."""
    api = stack.api
    org = (await api.post("/v1/organizations", json={"name": unique("org-")})).json()
    directory = (
        await api.post(
            "/v1/directories",
            json={
                "name": unique("dir-"),
                "organization_id": org["id"],
                "ldap": {
                    "url": "ldap://127.0.0.1:1",
                    "bind_dn": ROOT_DN,
                    "user_base_dn": f"ou=none,{SUFFIX}",
                    "live": False,
                },
            },
        )
    ).json()
    endpoint, route = await subscribe(stack, receiver, [directory["id"]], organization_id=org["id"])
    role = (await api.post("/v1/roles", json={"slug": "admin", "name": "Admin", "organization_id": org["id"]})).json()
    mapping = (
        await api.post(
            f"/v1/directories/{directory['id']}/role-mappings",
            json={"role": "admin", "match": "name", "pattern": "admins"},
        )
    ).json()
    key = (await api.post(f"/v1/organizations/{org['id']}/api-keys", json={"name": "hr portal"})).json()
    await emit(stack, directory["id"], 1)
    await wait_for(lambda: len(route.events()) == 1, 30, "the organization's first delivery")

    async def settled() -> bool:
        # The receiver has the event before the sender records the success on the endpoint;
        # the snapshots compared below must not catch the endpoint between the two writes.
        return (await api.get(f"/v1/endpoints/{endpoint['id']}")).json()["last_success_at"] is not None

    await wait_for(settled, 30, "the delivery's success recorded on the endpoint")
    delivery = (await api.get(f"/v1/endpoints/{endpoint['id']}/deliveries")).json()["data"][0]
    return {
        "organization_id": org["id"],
        "directory_id": directory["id"],
        "endpoint_id": endpoint["id"],
        "role_id": role["id"],
        "mapping_id": mapping["id"],
        "key_id": key["id"],
        "delivery_id": str(delivery["id"]),
        "key": key["key"],
    }


@pytest_asyncio.fixture(scope="module")
async def orgs(stack, receiver):
    """Two organizations, A and B, each with a directory, endpoint, role, mapping, key, delivery."""
    return await _organization_with_everything(stack, receiver), await _organization_with_everything(stack, receiver)


def as_key(stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, limits=API_CLIENT_LIMITS, headers={"authorization": f"Bearer {key}"}
    )


# Every route that names a resource, with a body valid enough to pass validation (so the
# answer is about the resource, not the body). test_the_table_covers_every_route keeps it whole.
ROUTES = [
    ("GET", "/v1/organizations/{organization_id}", None),
    ("GET", "/v1/organizations/{organization_id}/api-keys", None),
    ("DELETE", "/v1/organizations/{organization_id}/api-keys/{key_id}", None),
    ("GET", "/v1/directories/{directory_id}", None),
    ("PATCH", "/v1/directories/{directory_id}", {"name": "renamed"}),
    ("DELETE", "/v1/directories/{directory_id}", None),
    ("POST", "/v1/directories/{directory_id}/sync", None),
    ("GET", "/v1/directories/{directory_id}/sync", None),
    ("POST", "/v1/directories/{directory_id}/sync/cancel", None),
    ("POST", "/v1/directories/{directory_id}/test", None),
    ("GET", "/v1/directories/{directory_id}/sync-runs", None),
    ("GET", "/v1/directories/{directory_id}/users", None),
    ("GET", "/v1/directories/{directory_id}/groups", None),
    ("GET", "/v1/directories/{directory_id}/schedule", None),
    ("POST", "/v1/directories/{directory_id}/schedule/pause", None),
    ("POST", "/v1/directories/{directory_id}/schedule/resume", None),
    ("GET", "/v1/directories/{directory_id}/deletions", None),
    ("POST", "/v1/directories/{directory_id}/deletions/approve", None),
    ("POST", "/v1/directories/{directory_id}/deletions/reject", None),
    ("POST", "/v1/directories/{directory_id}/role-mappings", {"role": "admin", "match": "name", "pattern": "x"}),
    ("GET", "/v1/directories/{directory_id}/role-mappings", None),
    ("POST", "/v1/directories/{directory_id}/scim-token", None),
    ("DELETE", "/v1/directories/{directory_id}/role-mappings/{mapping_id}", None),
    ("GET", "/v1/endpoints/{endpoint_id}", None),
    ("PATCH", "/v1/endpoints/{endpoint_id}", {"rate_limit_per_second": 5}),
    ("DELETE", "/v1/endpoints/{endpoint_id}", None),
    ("POST", "/v1/endpoints/{endpoint_id}/disable", {"reason": "x"}),
    ("POST", "/v1/endpoints/{endpoint_id}/enable", None),
    ("GET", "/v1/endpoints/{endpoint_id}/state-changes", None),
    ("POST", "/v1/endpoints/{endpoint_id}/rotate-secret", None),
    ("POST", "/v1/endpoints/{endpoint_id}/recover", {"since": "2026-01-01T00:00:00Z"}),
    ("POST", "/v1/endpoints/{endpoint_id}/replay", {"directory_id": "{directory_id}", "since_sequence": 0}),
    ("GET", "/v1/endpoints/{endpoint_id}/deliveries", None),
    ("POST", "/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/resend", None),
    ("POST", "/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/skip", None),
    ("GET", "/v1/roles/{role_id}", None),
    ("PATCH", "/v1/roles/{role_id}", {"name": "renamed"}),
    ("DELETE", "/v1/roles/{role_id}", None),
]

# Routes without a resource in the path: naming another organization is a 404 too.
COLLECTIONS = [
    ("GET", "/v1/directories", {"params": {"organization_id": "{organization_id}"}}),
    (
        "POST",
        "/v1/directories",
        {
            "json": {
                "name": "x",
                "organization_id": "{organization_id}",
                "ldap": {
                    "url": "ldap://127.0.0.1:1",
                    "bind_dn": ROOT_DN,
                    "user_base_dn": f"ou=none,{SUFFIX}",
                    "live": False,
                },
            }
        },
    ),
    ("GET", "/v1/endpoints", {"params": {"organization_id": "{organization_id}"}}),
    ("POST", "/v1/endpoints", {"json": {"url": "http://127.0.0.1:9/x", "organization_id": "{organization_id}"}}),
    ("GET", "/v1/roles", {"params": {"organization_id": "{organization_id}"}}),
    ("POST", "/v1/roles", {"json": {"slug": "other", "name": "x", "organization_id": "{organization_id}"}}),
    ("GET", "/v1/events", {"params": {"organization_id": "{organization_id}"}}),
    ("GET", "/v1/events", {"params": {"directory_id": "{directory_id}"}}),
]


def _fill(value, ids: dict[str, str]):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


async def _snapshot(stack, ids: dict[str, str]) -> list:
    """What B's resources look like to the admin: must not move when A's key pokes them."""
    api = stack.api
    paths = [
        f"/v1/directories/{ids['directory_id']}",
        f"/v1/endpoints/{ids['endpoint_id']}",
        f"/v1/roles/{ids['role_id']}",
        f"/v1/directories/{ids['directory_id']}/role-mappings",
        f"/v1/organizations/{ids['organization_id']}/api-keys",
        f"/v1/endpoints/{ids['endpoint_id']}/deliveries",
        f"/v1/endpoints/{ids['endpoint_id']}/state-changes",
        f"/v1/directories/{ids['directory_id']}/schedule",
    ]
    answers = [await api.get(p) for p in paths]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    snapshot = [a.json() for a in answers]
    for key in snapshot[4]:
        key.pop("last_used_at")  # B's own key is not used here, but keep the comparison about state
    return snapshot


async def test_the_table_covers_every_route(stack):
    spec = (await stack.api.get("/openapi.json")).json()
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/v1/")}
    tested = (
        {(m, p) for m, p, _ in ROUTES}
        | {(m, p) for m, p, _ in COLLECTIONS}
        | {
            ("GET", "/v1/organizations"),
            ("POST", "/v1/organizations"),
            ("POST", "/v1/organizations/{organization_id}/api-keys"),
        }
    )  # tested below
    assert served == tested, f"untested: {served - tested}; gone: {tested - served}"


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_a_key_gets_404_on_another_organizations_resource(stack, orgs, method, path, body):
    a, b = orgs
    before = await _snapshot(stack, b)
    async with as_key(stack, a["key"]) as client:
        r = await client.request(method, _fill(path, b), json=_fill(body, b))
        assert r.status_code == 404, r.text
        if method == "GET":  # while its own organization's resource answers
            own = await client.get(_fill(path, a))
            assert own.status_code == 200, own.text
    assert await _snapshot(stack, b) == before


@pytest.mark.parametrize(
    "method,path,kwargs", COLLECTIONS, ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(COLLECTIONS)]
)
async def test_a_key_gets_404_naming_another_organization(stack, orgs, method, path, kwargs):
    a, b = orgs
    before = await _snapshot(stack, b)
    async with as_key(stack, a["key"]) as client:
        r = await client.request(method, path, **_fill(kwargs, b))
    assert r.status_code == 404, r.text
    assert await _snapshot(stack, b) == before


async def test_a_key_lists_and_creates_in_its_own_organization_only(stack, orgs):
    a, _b = orgs
    async with as_key(stack, a["key"]) as client:
        assert [o["id"] for o in (await client.get("/v1/organizations")).json()] == [a["organization_id"]]
        assert [d["id"] for d in (await client.get("/v1/directories")).json()] == [a["directory_id"]]
        assert [e["id"] for e in (await client.get("/v1/endpoints")).json()] == [a["endpoint_id"]]
        assert [r["id"] for r in (await client.get("/v1/roles")).json()] == [a["role_id"]]
        events = (await client.get("/v1/events")).json()["data"]
        assert events and {e["directory_id"] for e in events} == {a["directory_id"]}
        r = await client.post("/v1/organizations", json={"name": "mine now"})
        assert r.status_code == 403 and "admin token" in r.text
        r = await client.post("/v1/roles", json={"slug": unique("viewer-"), "name": "Viewer"})
        assert r.status_code == 201 and r.json()["organization_id"] == a["organization_id"]


async def test_a_key_cannot_mint_keys_so_revoking_a_leaked_one_evicts_its_holder(stack, orgs):
    a, b = orgs
    leaked = (
        await stack.api.post(f"/v1/organizations/{a['organization_id']}/api-keys", json={"name": "leaked"})
    ).json()

    async def key_ids(org: dict) -> list[str]:
        return [k["id"] for k in (await stack.api.get(f"/v1/organizations/{org['organization_id']}/api-keys")).json()]

    before = {"a": await key_ids(a), "b": await key_ids(b)}
    async with as_key(stack, leaked["key"]) as client:
        for org in (a, b):  # its own organization or another: no new key either way
            r = await client.post(f"/v1/organizations/{org['organization_id']}/api-keys", json={"name": "spare"})
            assert r.status_code == 403 and "admin token" in r.text, r.text
    assert {"a": await key_ids(a), "b": await key_ids(b)} == before
    r = await stack.api.delete(f"/v1/organizations/{a['organization_id']}/api-keys/{leaked['id']}")
    assert r.status_code == 204
    async with as_key(stack, leaked["key"]) as client:
        assert (await client.get("/v1/directories")).status_code == 401  # evicted, with no spare key


async def test_a_revoked_key_gets_401_at_once(stack, orgs):
    a, _b = orgs
    created = (
        await stack.api.post(f"/v1/organizations/{a['organization_id']}/api-keys", json={"name": "to revoke"})
    ).json()
    assert created["key"].startswith("dhk_")
    listed = await stack.api.get(f"/v1/organizations/{a['organization_id']}/api-keys")
    assert created["key"] not in listed.text and created["key"].split(".")[1] not in listed.text
    async with as_key(stack, created["key"]) as client:
        assert (await client.get("/v1/directories")).status_code == 200
        r = await client.delete(f"/v1/organizations/{a['organization_id']}/api-keys/{created['id']}")
        assert r.status_code == 204
        r = await client.get("/v1/directories")
        assert r.status_code == 401 and "revoked" in r.text
        assert r.headers["www-authenticate"] == "Bearer"
    revoked = [
        k
        for k in (await stack.api.get(f"/v1/organizations/{a['organization_id']}/api-keys")).json()
        if k["id"] == created["id"]
    ]
    assert revoked[0]["revoked_at"] is not None and revoked[0]["last_used_at"] is not None
    # a tampered secret or a made-up key ID is a 401 as well
    _key_id, secret = created["key"].removeprefix("dhk_").split(".")
    for token in (f"dhk_{a['key_id']}.{secret}", f"dhk_key_00000000000000000000000000.{secret}", "dhk_nonsense"):
        async with as_key(stack, token) as client:
            assert (await client.get("/v1/directories")).status_code == 401, token


async def test_the_cli_creates_uses_and_revokes_a_key(stack, orgs, tmp_path):
    a, _b = orgs
    out = await run_cli(stack, tmp_path, "orgs", "add-key", a["organization_id"], "--name", "cli")
    key = re.search(r"dhk_\S+", out).group(0)
    key_id = key.removeprefix("dhk_").split(".")[0]
    as_org = {"DIRHOOK_API_KEY": key}
    listed = await run_cli(stack, tmp_path, "directories", "list", env=as_org)
    assert a["directory_id"] in listed
    assert key not in await run_cli(stack, tmp_path, "orgs", "keys", a["organization_id"])
    await run_cli(stack, tmp_path, "orgs", "revoke-key", a["organization_id"], key_id)
    refused = await run_cli(stack, tmp_path, "directories", "list", env=as_org, code=1)
    assert "401" in refused and "revoked" in refused
