"""Bad input gets a clear 4xx and changes nothing; unknown IDs get 404; no token, 401."""

from __future__ import annotations

import httpx
import pytest

from tests.support.slapd import ROOT_DN

GOOD_LDAP = {"url": "ldap://127.0.0.1:389", "bind_dn": ROOT_DN, "user_base_dn": "ou=people,dc=example,dc=com"}

BAD_REQUESTS = [
    # (method, path, kwargs, status, text that must appear in the answer)
    (
        "POST",
        "/v1/directories",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
    ("POST", "/v1/directories", {"json": {"name": "x"}}, 422, "ldap"),
    ("POST", "/v1/directories", {"json": {"name": "x", "ldap": {**GOOD_LDAP, "url": "http://x"}}}, 422, "ldap://"),
    ("POST", "/v1/directories", {"json": {"name": "x", "ldap": {**GOOD_LDAP, "user_filter": "(uid=a"}}}, 422, "filter"),
    # The directory source policy (issue 14, finding 2): never where a password is stolen.
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "ldap": {**GOOD_LDAP, "url": "ldap://169.254.169.254"}, "bind_password": "p"}},
        422,
        "cloud metadata",
    ),
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "ldap": {**GOOD_LDAP, "url": "ldap://2130706433"}}},
        422,
        "numeric",
    ),
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "ldap": {**GOOD_LDAP, "url": "ldap://[fe80::1]"}}},
        422,
        "link-local",
    ),
    ("POST", "/v1/directories", {"json": {"name": "x", "ldap": {**GOOD_LDAP, "flavour": "novell"}}}, 422, "flavour"),
    ("POST", "/v1/directories", {"json": {"name": "x", "ldap": GOOD_LDAP, "colour": "red"}}, 422, "colour"),
    ("POST", "/v1/directories", {"json": {"name": "", "ldap": GOOD_LDAP}}, 422, "name"),
    (
        "POST",
        "/v1/directories",
        {
            "json": {
                "name": "x",
                "ldap": GOOD_LDAP,
                "attribute_mapping": {"user": {"title": {"source": "title", "transform": "upper"}}},
            }
        },
        422,
        "unknown transform",
    ),
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "ldap": GOOD_LDAP, "attribute_mapping": {"user": {"shoe_size": {"source": "x"}}}}},
        422,
        "shoe_size",
    ),
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "ldap": GOOD_LDAP, "organization_id": "org_nope"}},
        404,
        "org_nope",
    ),
    ("POST", "/v1/directories", {"json": {"name": "x", "provider": "scim", "ldap": GOOD_LDAP}}, 422, "SCIM"),
    # Entra group IDs go into an OData $filter: only GUIDs (issue 14, finding 10).
    (
        "POST",
        "/v1/directories",
        {
            "json": {
                "name": "x",
                "provider": "entra",
                "client_secret": "s",
                "entra": {"tenant_id": "t", "client_id": "c", "group_ids": ["x' or id ne 'y"]},
            }
        },
        422,
        "GUID",
    ),
    ("POST", "/v1/directories", {"json": {"name": "x", "provider": "scim", "bind_password": "pw"}}, 422, "SCIM"),
    ("POST", "/v1/directories", {"json": {"name": "x", "provider": "okta"}}, 422, "provider"),
    ("POST", "/v1/directories", {"json": {"name": "x", "provider": "entra", "client_secret": "s"}}, 422, "entra"),
    (
        "POST",
        "/v1/directories",
        {
            "json": {
                "name": "x",
                "provider": "entra",
                "client_secret": "s",
                "entra": {"tenant_id": "t", "client_id": "c", "graph_base_url": "http://graph.example/v1.0"},
            }
        },
        422,
        "https",
    ),
    (
        "POST",
        "/v1/directories",
        {"json": {"name": "x", "provider": "entra", "entra": {"tenant_id": "t", "client_id": "c"}}},
        422,
        "client_secret",
    ),
    ("POST", "/v1/endpoints", {"json": {"url": "file:///etc/passwd"}}, 422, "http"),
    ("POST", "/v1/endpoints", {"json": {"url": "not a url"}}, 422, "http"),
    (
        "POST",
        "/v1/endpoints",
        {"json": {"url": "http://127.0.0.1:1/", "event_types": ["nope.*"]}},
        422,
        "matches no event type",
    ),
    (
        "POST",
        "/v1/endpoints",
        {"json": {"url": "http://127.0.0.1:1/", "retry_schedule": [-1]}},
        422,
        "greater than or equal to 0",
    ),
    ("POST", "/v1/endpoints", {"json": {"url": "http://127.0.0.1:1/", "directory_ids": ["dir_nope"]}}, 404, "dir_nope"),
    ("POST", "/v1/organizations", {"json": {"name": ""}}, 422, "name"),
    ("GET", "/v1/directories/dir_nope", {}, 404, "dir_nope"),
    ("PATCH", "/v1/directories/dir_nope", {"json": {"name": "y"}}, 404, "dir_nope"),
    ("DELETE", "/v1/directories/dir_nope", {}, 404, "dir_nope"),
    ("POST", "/v1/directories/dir_nope/sync", {}, 404, "dir_nope"),
    ("GET", "/v1/directories/dir_nope/sync", {}, 404, "dir_nope"),
    ("GET", "/v1/directories/dir_nope/sync-runs", {}, 404, "dir_nope"),
    ("GET", "/v1/directories/dir_nope/users", {}, 404, "dir_nope"),
    ("GET", "/v1/directories/dir_nope/groups", {}, 404, "dir_nope"),
    ("GET", "/v1/endpoints/ep_nope", {}, 404, "ep_nope"),
    ("GET", "/v1/endpoints/ep_nope/deliveries", {}, 404, "ep_nope"),
    ("DELETE", "/v1/endpoints/ep_nope", {}, 404, "ep_nope"),
    ("GET", "/v1/events", {"params": {"directory_id": "dir_nope"}}, 404, "dir_nope"),
    ("GET", "/v1/events", {"params": {"after": "abc"}}, 422, "cursor"),
    ("GET", "/v1/events", {"params": {"limit": 0}}, 422, "limit"),
    ("GET", "/v1/events", {"params": {"limit": 5000}}, 422, "limit"),
]


# What moves by itself while other tests' directories and endpoints keep working (passes
# move cursors, deliveries succeed): not something a refused request could have changed.
_MOVING = {"cursor", "last_success_at", "failing_since"}


async def _state(stack) -> tuple:
    def settled(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in item.items() if k not in _MOVING} for item in items]

    dirs = settled((await stack.api.get("/v1/directories")).json())
    eps = settled((await stack.api.get("/v1/endpoints")).json())
    orgs = (await stack.api.get("/v1/organizations")).json()
    return dirs, eps, orgs


@pytest.mark.parametrize(
    "method,path,kwargs,status,needle", BAD_REQUESTS, ids=[f"{m} {p} {i}" for i, (m, p, *_r) in enumerate(BAD_REQUESTS)]
)
async def test_bad_request_is_refused_with_a_message(stack, method, path, kwargs, status, needle):
    before = await _state(stack)
    r = await stack.api.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert needle.lower() in r.text.lower(), r.text
    assert await _state(stack) == before


async def test_bad_sync_mode_and_bad_patch_change_nothing(stack, slapd):
    r = await stack.api.post(
        "/v1/directories",
        json={"name": "v", "ldap": {**GOOD_LDAP, "url": slapd.url}, "bind_password": "pw-secret-value"},
    )
    assert r.status_code == 201
    d = r.json()
    assert "pw-secret-value" not in r.text and d["has_bind_password"] is True
    r = await stack.api.post(f"/v1/directories/{d['id']}/sync", params={"mode": "sometimes"})
    assert r.status_code == 422 and "mode" in r.text
    for patch, needle in (
        ({"ldap": {"url": "gopher://x"}}, "ldap://"),
        ({"ldap": {"page_size": 0}}, "page_size"),
        ({"attribute_mapping": {"group": {"name": {"transform": "first"}}}}, "source"),
        ({"owner": "me"}, "owner"),
        ({"ldap": {"url": "ldaps://[fd00:ec2::254]"}, "bind_password": "pw-secret-value"}, "metadata"),
    ):
        r = await stack.api.patch(f"/v1/directories/{d['id']}", json=patch)
        assert r.status_code == 422 and needle in r.text, r.text
    assert (await stack.api.get(f"/v1/directories/{d['id']}")).json() == d
    listed = await stack.api.get("/v1/directories")
    assert "pw-secret-value" not in listed.text
    assert (await stack.api.delete(f"/v1/directories/{d['id']}")).status_code == 204
    assert (await stack.api.get(f"/v1/directories/{d['id']}")).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"url": "ldap://attacker.example:389"},
        {"bind_dn": "cn=someone-else,dc=example,dc=com"},
        {"start_tls": True},
        {"verify_tls": False},
    ],
)
async def test_moving_where_the_bind_password_goes_needs_the_password(stack, change):
    """Security (issue 14, finding 2): a caller who may PATCH but does not know the stored
    password cannot point the next bind, with that password, at a server of its choosing."""
    r = await stack.api.post(
        "/v1/directories",
        json={"name": "moved", "ldap": {**GOOD_LDAP, "live": False}, "bind_password": "pw-kept-here"},
    )
    assert r.status_code == 201, r.text
    d = r.json()
    path = f"/v1/directories/{d['id']}"
    r = await stack.api.patch(path, json={"ldap": change})
    field = next(iter(change))
    assert r.status_code == 422 and f"ldap.{field}" in r.text and "bind_password" in r.text, r.text
    assert (await stack.api.get(path)).json() == d  # nothing changed
    # A change elsewhere needs no password; the same move with the password is fine.
    assert (await stack.api.patch(path, json={"ldap": {"page_size": 100}})).status_code == 200
    r = await stack.api.patch(path, json={"ldap": change, "bind_password": "pw-kept-here"})
    assert r.status_code == 200 and r.json()["config"][field] == change[field], r.text
    assert (await stack.api.delete(path)).status_code == 204


async def test_endpoint_secret_is_shown_once(stack):
    r = await stack.api.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "event_types": ["user.*"]})
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("whsec_")
    shown = await stack.api.get(f"/v1/endpoints/{created['id']}")
    listed = await stack.api.get("/v1/endpoints")
    assert created["secret"] not in shown.text and created["secret"] not in listed.text
    assert (await stack.api.delete(f"/v1/endpoints/{created['id']}")).status_code == 204


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic abc"}], ids=["none", "wrong", "basic"]
)
async def test_admin_routes_need_the_token(stack, headers):
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as anonymous:
        for method, path in (("GET", "/v1/directories"), ("POST", "/v1/endpoints"), ("GET", "/v1/events")):
            r = await anonymous.request(method, path, json={})
            assert r.status_code == 401, (path, r.text)
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["database_schema"] == "ok"
        docs = await anonymous.get("/openapi.json")
        assert docs.status_code == 200 and "/v1/directories/{directory_id}/sync" in docs.json()["paths"]
