"""A SCIM client as identity providers drive dirhook, for the SCIM end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.conftest import API_CLIENT_LIMITS, unique
from tests.support.e2e_helpers import subscribe

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class ScimDirectory:
    directory: dict
    client: httpx.AsyncClient

    @property
    def id(self) -> str:
        return self.directory["id"]

    async def call(self, method: str, path: str, expect: int | None = None, **kw) -> httpx.Response:
        r = await self.client.request(method, path, **kw)
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r

    async def patch(self, path: str, *operations: dict) -> httpx.Response:
        """RFC 7644 §3.5.2: 200 with the resource, or 204 when no attributes were asked for."""
        r = await self.call("PATCH", path, json={"schemas": [PATCH], "Operations": list(operations)})
        assert r.status_code in (200, 204), (path, r.status_code, r.text)
        return r


async def scim_directory(stack, receiver, **endpoint_settings):
    r = await stack.api.post("/v1/directories", json={"name": unique("scim-"), "provider": "scim"})
    assert r.status_code == 201, r.text
    d = r.json()
    endpoint, route = await subscribe(stack, receiver, [d["id"]], **endpoint_settings)
    client = httpx.AsyncClient(
        base_url=d["scim_base_url"],
        timeout=30,
        limits=API_CLIENT_LIMITS,
        headers={"authorization": f"Bearer {d['scim_token']}", "content-type": "application/scim+json"},
    )
    return ScimDirectory(d, client), endpoint, route


def summary(events: list[dict]) -> list[tuple]:
    """(type, who) per event: a user's username, a group's name, or group/user for memberships."""
    out = []
    for e in events:
        data = e["data"]
        if e["type"].startswith("group.user_"):
            out.append((e["type"], data["group"]["name"], data["user"]["username"]))
        elif e["type"].startswith("user."):
            out.append((e["type"], data["username"]))
        elif e["type"].startswith("group."):
            out.append((e["type"], data["name"]))
        else:
            out.append((e["type"],))
    return out
