"""Google Workspace directories over the local Admin SDK, for the Google end-to-end tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import unique
from tests.support.e2e_helpers import subscribe
from tests.support.google_admin import Account, AdminSdkServer


def google_user(account: Account, i: int, **props: Any) -> str:
    """The same person as tests.support.slapd.people_ldif's user i, as Google holds them."""
    uid = f"user{i:05d}"
    return account.put_user(
        f"{uid}@example.com",
        name={"givenName": "User", "familyName": f"Number{i}", "displayName": f"User {i}"},
        organizations=[{"title": "Engineer", "primary": True, "customType": ""}],
        externalIds=[{"value": str(1000 + i), "type": "organization"}],
        **props,
    )


def google_settings(server: AdminSdkServer, account: Account, **overrides: Any) -> dict[str, Any]:
    return {
        "admin_email": account.admin,
        "api_base_url": server.base_url,
        "token_uri": server.token_uri,
        **overrides,
    }


async def google_directory(stack, server: AdminSdkServer, receiver, account: Account, **overrides: Any):
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": unique("google-"),
            "provider": "google",
            "service_account_key": account.key_json(),
            "google": google_settings(server, account, **overrides),
        },
    )
    assert r.status_code == 201, r.text
    directory = r.json()
    endpoint, route = await subscribe(stack, receiver, [directory["id"]])
    return directory, endpoint, route
