"""Bad SCIM requests get SCIM's 4xx (with scimType where RFC 7644 names one), never a 500,
and change nothing: no SCIM resource, no user, no event. Limits answer with their own errors."""

from __future__ import annotations

import httpx
import pytest

from dirhook.api.app import create_app
from dirhook.config import Settings
from tests.support.scim_helpers import GROUP, PATCH, USER, scim_directory

ADA = {"schemas": [USER], "userName": "ada@example.com", "name": {"givenName": "Ada"}}
JSON = {"content-type": "application/scim+json"}

BAD = [
    # (method, path, kwargs, status, scimType or None, what the detail must mention)
    ("POST", "/Users", {"content": b'{"schemas": [', "headers": JSON}, 400, "invalidSyntax", None),
    ("POST", "/Users", {"content": b'{"userName": "x"}', "headers": {"content-type": "text/plain"}}, 415, None, None),
    ("POST", "/Users", {"json": {"schemas": ["urn:example:nope"], "userName": "x"}}, 400, "invalidSyntax", "schema"),
    (
        "POST",
        "/Users",
        {"json": {"schemas": [USER], "userName": "x", "shoeSize": 42}},
        400,
        "invalidSyntax",
        "shoeSize",
    ),
    ("POST", "/Users", {"json": {"schemas": [USER]}}, 400, "invalidValue", "userName"),
    ("POST", "/Users", {"json": ADA}, 409, "uniqueness", None),
    ("POST", "/Users", {"json": {**ADA, "userName": "ADA@example.com"}}, 409, "uniqueness", None),
    ("GET", "/Users", {"params": {"filter": "userName eq"}}, 400, "invalidFilter", None),
    ("GET", "/Users", {"params": {"filter": 'userName zz "a"'}}, 400, "invalidFilter", None),
    (
        "PATCH",
        "/Users/{ada}",
        {"json": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "id", "value": "mine"}]}},
        400,
        "mutability",
        None,
    ),
    (
        "PATCH",
        "/Users/{ada}",
        {
            "json": {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}],
            }
        },
        400,
        "mutability",
        None,
    ),
    (
        "PATCH",
        "/Users/{ada}",
        {"json": {"schemas": [PATCH], "Operations": [{"op": "jump", "path": "title", "value": "x"}]}},
        400,
        "invalidValue",
        "jump",
    ),
    (
        "PATCH",
        "/Users/{ada}",
        {
            "json": {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "userName", "value": "grace@example.com"}],
            }
        },
        409,
        "uniqueness",
        None,
    ),
    ("PUT", "/Users/{ada}", {"json": {**ADA, "id": "{ada}", "active": "maybe"}}, 400, "invalidValue", "active"),
    ("GET", "/Users/nope", {}, 404, None, None),
    ("DELETE", "/Users/nope", {}, 404, None, None),
    ("POST", "/Groups", {"json": {"schemas": [GROUP]}}, 400, "invalidValue", "displayName"),
    ("POST", "/Users", {"content": b"x" * (1024 * 1024 + 10), "headers": JSON}, 413, None, "bytes"),
]


@pytest.fixture(scope="module")
async def populated(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    ada = (await scim.call("POST", "/Users", 201, json=ADA)).json()["id"]
    await scim.call("POST", "/Users", 201, json={"schemas": [USER], "userName": "grace@example.com"})
    return scim, ada, route


async def _state(stack, scim) -> tuple:
    users = (await scim.call("GET", "/Users", 200)).json()
    events = (await stack.api.get("/v1/events", params={"directory_id": scim.id})).json()["data"]
    normalized = (await stack.api.get(f"/v1/directories/{scim.id}/users")).json()["data"]
    return users, [e["id"] for e in events], normalized


@pytest.mark.parametrize(
    "method,path,kwargs,status,scim_type,needle", BAD, ids=[f"{m} {p} {i}" for i, (m, p, *_r) in enumerate(BAD)]
)
@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_bad_scim_request_is_refused_and_changes_nothing(
    stack, populated, method, path, kwargs, status, scim_type, needle
):
    scim, ada, _route = populated
    before = await _state(stack, scim)
    fill = {"json": lambda v: __import__("json").loads(__import__("json").dumps(v).replace("{ada}", ada))}
    kwargs = {k: fill.get(k, lambda v: v)(v) for k, v in kwargs.items()}
    r = await scim.call(method, path.replace("{ada}", ada), **kwargs)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and error["status"] == str(status)
    assert error.get("scimType") == scim_type, error
    if needle:
        assert needle in error.get("detail", ""), error
    assert await _state(stack, scim) == before


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_limits_page_size_and_rate(stack):
    """A second API process on the same database, with small limits (its writes touch no
    endpoint, so it needs no Temporal)."""
    d = (await stack.api.post("/v1/directories", json={"name": "limits", "provider": "scim"})).json()
    settings = Settings(
        data_dir=stack.settings.data_dir,
        database_url=stack.settings.sqlalchemy_url,
        admin_token="t" * 32,
        scim_max_page_size=2,
        scim_rate_limit_per_second=0.1,
        scim_rate_limit_burst=5,
        encryption_keys=stack.settings.encryption_keys,
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dirhook",
        headers={"authorization": f"Bearer {d['scim_token']}"},
    ) as scim:
        base = f"/scim/v2/{d['id']}"
        for i in range(3):
            r = await scim.post(f"{base}/Users", json={"schemas": [USER], "userName": f"u{i}"})
            assert r.status_code == 201, r.text
        page = (await scim.get(f"{base}/Users", params={"count": 50})).json()
        assert page["totalResults"] == 3 and page["itemsPerPage"] == 2 and len(page["Resources"]) == 2
        config = (await scim.get(f"{base}/ServiceProviderConfig")).json()
        assert config["filter"]["maxResults"] == 2
        limited = await scim.get(f"{base}/Users")  # the 6th, and the next token is 10 s away
        assert limited.status_code == 429, limited.text
        assert limited.json()["status"] == "429" and int(limited.headers["retry-after"]) >= 1
