"""Entra directories over the local Graph, for the Entra end-to-end tests."""

from __future__ import annotations

from tests.conftest import unique
from tests.support.e2e_helpers import subscribe
from tests.support.graph import GraphServer, Tenant


def graph_user(tenant: Tenant, i: int, **props) -> str:
    """The same person as tests.support.slapd.people_ldif's user i, as Graph holds them."""
    uid = f"user{i:05d}"
    return tenant.put_user(
        **{
            "userPrincipalName": uid,
            "mail": f"{uid}@example.com",
            "givenName": "User",
            "surname": f"Number{i}",
            "displayName": f"User {i}",
            "jobTitle": "Engineer",
            "employeeId": str(1000 + i),
            "accountEnabled": True,
            **props,
        }
    )


async def entra_directory(
    stack, graph: GraphServer, receiver, tenant: Tenant, *, secret: str | None = None, **entra_settings
):
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": unique("entra-"),
            "provider": "entra",
            "client_secret": secret or tenant.client_secret,
            "entra": {
                "tenant_id": tenant.tenant_id,
                "client_id": tenant.client_id,
                "authority_host": graph.authority,
                "graph_base_url": graph.graph_url,
                **entra_settings,
            },
        },
    )
    assert r.status_code == 201, r.text
    directory = r.json()
    endpoint, route = await subscribe(stack, receiver, [directory["id"]])
    return directory, endpoint, route
