"""Provisioning sequences as Entra ID and Okta send them, replayed against a SCIM directory:
the exact events a receiver gets (signatures verified), with previous_attributes."""

from __future__ import annotations

from datetime import UTC

import pytest

from tests.support.scim_helpers import ENTERPRISE, GROUP, USER, scim_directory, summary
from tests.support.wait import wait_for


async def delivered(stack, scim, route, n: int) -> list[dict]:
    """The n events the receiver got, in order, once they are all there; and no other
    event was emitted for the directory."""
    events = await wait_for(lambda: len(route.events()) >= n and route.events(), 30, f"{n} events")
    assert route.refused == []  # every delivery verified (standardwebhooks and svix) and accepted
    emitted = (await stack.api.get("/v1/events", params={"directory_id": scim.id})).json()["data"]
    assert [e["id"] for e in emitted] == [e["id"] for e in events]
    return events


def changes(events: list[dict]) -> list[tuple]:
    return [(*summary([e])[0], e.get("previous_attributes")) for e in events]


def entra_user(name: str, title: str) -> dict:
    given, family = name.split()
    mail = f"{given.lower()}@contoso.example"
    # What Entra's provisioning service POSTs (without the aadOptscim062020 flag).
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": given.lower(),
        "userName": mail,
        "active": True,
        "displayName": name,
        "title": title,
        "emails": [{"primary": True, "type": "work", "value": mail}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": name, "familyName": family, "givenName": given},
        ENTERPRISE: {"department": "R&D"},
    }


async def test_entra_provisioning_sequence(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    ids = {}
    for name in ("Ada Lovelace", "Grace Hopper"):
        mail = f"{name.split()[0].lower()}@contoso.example"
        found = await scim.call("GET", "/Users", 200, params={"filter": f'userName eq "{mail.upper()}"'})
        assert found.json()["totalResults"] == 0  # Entra's existence check, case-insensitive
        ids[name.split()[0]] = (await scim.call("POST", "/Users", 201, json=entra_user(name, "Engineer"))).json()["id"]
    found = await scim.call("GET", "/Users", 200, params={"filter": 'userName eq "ADA@contoso.example"'})
    assert [u["id"] for u in found.json()["Resources"]] == [ids["Ada"]]
    group = (
        await scim.call(
            "POST",
            "/Groups",
            201,
            json={"schemas": [GROUP], "externalId": "eng", "displayName": "Engineering", "members": []},
        )
    ).json()
    gpath = f"/Groups/{group['id']}"
    await scim.patch(gpath, {"op": "Add", "path": "members", "value": [{"value": ids["Ada"]}]})
    await scim.patch(gpath, {"op": "Add", "path": "members", "value": [{"value": ids["Grace"]}]})
    # One Replace per attribute, a schema-qualified path, Add on a single-valued attribute
    await scim.patch(
        f"/Users/{ids['Ada']}",
        {"op": "Replace", "path": "title", "value": "Principal Engineer"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Research"},
        {"op": "Add", "path": "nickName", "value": "Countess"},
    )
    await scim.patch(f"/Users/{ids['Ada']}", {"op": "Replace", "path": "active", "value": "False"})  # a string
    # Entra's member removal: only the listed member goes, never all of them
    await scim.patch(gpath, {"op": "Remove", "path": "members", "value": [{"value": ids["Grace"]}]})
    members = (await scim.call("GET", gpath, 200)).json()["members"]
    assert [m["value"] for m in members] == [ids["Ada"]]
    await scim.call("DELETE", f"/Users/{ids['Ada']}", 204)

    events = await delivered(stack, scim, route, 13)
    group_ref = {"id": events[2]["data"]["id"], "name": "Engineering", "direct": True}
    # Deprovisions (the deactivation, the deletion) reach receivers once the IdP's pushes
    # pause (deletion protection, dirhook/scim/deprovisions.py): each user's own events
    # stay in order, and the deprovision comes after the writes made meanwhile.
    assert changes(events) == [
        ("user.created", "ada@contoso.example", None),
        ("user.created", "grace@contoso.example", None),
        ("group.created", "Engineering", None),
        ("user.updated", "ada@contoso.example", {"groups": []}),
        ("group.user_added", "Engineering", "ada@contoso.example", None),
        ("user.updated", "grace@contoso.example", {"groups": []}),
        ("group.user_added", "Engineering", "grace@contoso.example", None),
        # nickName is not mapped: it shows among raw_attributes, beside the IdP's externalId
        (
            "user.updated",
            "ada@contoso.example",
            {"department": "R&D", "title": "Engineer", "raw_attributes": {"externalId": ["ada"]}},
        ),
        ("user.updated", "grace@contoso.example", {"groups": [group_ref]}),
        ("group.user_removed", "Engineering", "grace@contoso.example", None),
        ("user.updated", "ada@contoso.example", {"active": True}),
        ("group.user_removed", "Engineering", "ada@contoso.example", None),
        ("user.deleted", "ada@contoso.example", None),
    ]
    ada = events[10]["data"]
    assert ada["active"] is False and ada["title"] == "Principal Engineer" and ada["department"] == "Research"
    assert ada["emails"] == [{"value": "ada@contoso.example", "primary": True, "type": "work"}]
    assert (ada["given_name"], ada["family_name"]) == ("Ada", "Lovelace")
    assert {e["sequence"] for e in events} == set(range(events[0]["sequence"], events[0]["sequence"] + 13))


def okta_user(given: str, family: str, title: str) -> dict:
    mail = f"{given.lower()}@okta.example"
    # Okta's create and PUT bodies carry a password (never stored here) and an empty groups list.
    return {
        "schemas": [USER],
        "userName": mail,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": mail, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": f"00u{given.lower()}",
        "groups": [],
        "password": "Okta-Pa55!word",
        "active": True,
        "title": title,
    }


async def test_okta_provisioning_sequence(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    ids = {}
    for given, family in (("Linus", "Torvalds"), ("Greg", "Kroah")):
        found = await scim.call(
            "GET",
            "/Users",
            200,
            params={"filter": f'userName eq "{given.lower()}@okta.example"', "startIndex": "1", "count": "100"},
        )
        assert found.json()["totalResults"] == 0
        created = await scim.call("POST", "/Users", 201, json=okta_user(given, family, "Developer"))
        assert "password" not in created.json()
        ids[given] = created.json()["id"]
    group = {"schemas": [GROUP], "displayName": "Kernel", "members": [{"value": ids["Linus"], "display": "Linus"}]}
    gid = (await scim.call("POST", "/Groups", 201, json=group)).json()["id"]
    with_greg = {**group, "id": gid, "members": [*group["members"], {"value": ids["Greg"], "display": "Greg"}]}
    await scim.call("PUT", f"/Groups/{gid}", 200, json=with_greg)
    await scim.call(
        "PUT", f"/Users/{ids['Linus']}", 200, json={**okta_user("Linus", "Torvalds", "Maintainer"), "id": ids["Linus"]}
    )
    await scim.patch(f"/Users/{ids['Linus']}", {"op": "replace", "value": {"active": False}})  # Okta deactivates
    await scim.call("PUT", f"/Groups/{gid}", 200, json={**with_greg, "members": group["members"]})
    await scim.call("DELETE", f"/Users/{ids['Linus']}", 204)

    events = await delivered(stack, scim, route, 13)
    group_ref = {"id": events[2]["data"]["id"], "name": "Kernel", "direct": True}
    # Deprovisions (the deactivation, the deletion) reach receivers once the IdP's pushes
    # pause (deletion protection, dirhook/scim/deprovisions.py): each user's own events
    # stay in order, and the deprovision comes after the writes made meanwhile.
    assert changes(events) == [
        ("user.created", "linus@okta.example", None),
        ("user.created", "greg@okta.example", None),
        ("group.created", "Kernel", None),
        ("user.updated", "linus@okta.example", {"groups": []}),
        ("group.user_added", "Kernel", "linus@okta.example", None),
        ("user.updated", "greg@okta.example", {"groups": []}),
        ("group.user_added", "Kernel", "greg@okta.example", None),
        ("user.updated", "linus@okta.example", {"title": "Developer"}),
        ("user.updated", "greg@okta.example", {"groups": [group_ref]}),
        ("group.user_removed", "Kernel", "greg@okta.example", None),
        ("user.updated", "linus@okta.example", {"active": True}),
        ("group.user_removed", "Kernel", "linus@okta.example", None),
        ("user.deleted", "linus@okta.example", None),
    ]
    assert not any("Okta-Pa55!word" in r.body for r in route.accepted)
    stored = (await scim.call("GET", f"/Users/{ids['Greg']}", 200)).json()
    assert "password" not in stored and stored["meta"]["location"].endswith(f"/Users/{ids['Greg']}")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_a_full_pass_reconciles_what_a_projection_missed(stack, receiver):
    """The SCIM table is the truth: a resource stored without its projection (a crash
    between the two) reaches receivers with the next full pass, and nothing else does."""
    from datetime import datetime

    from dirhook.db.scim_tables import ScimResource
    from dirhook.scim.index import version_of
    from tests.support.e2e_helpers import sync

    scim, _endpoint, route = await scim_directory(stack, receiver)
    await scim.call("POST", "/Users", 201, json=okta_user("Linus", "Torvalds", "Developer"))
    await delivered(stack, scim, route, 1)
    body = {
        "schemas": [USER],
        "id": "0" * 32,
        "userName": "orphan@okta.example",
        "active": True,
        "meta": {"resourceType": "User"},
    }
    now = datetime.now(UTC)
    with stack.sessions.begin() as s:
        s.add(
            ScimResource(
                directory_id=scim.id,
                id=body["id"],
                resource_type="User",
                match_key=body["userName"],
                unique_key=body["userName"],
                body=body,
                version=version_of(body),
                created_at=now,
                updated_at=now,
            )
        )
    status = await sync(stack, scim.id, "full")
    assert status["last_run"]["status"] == "succeeded", status
    events = await delivered(stack, scim, route, 3)
    assert changes(events)[1:] == [("user.created", "orphan@okta.example", None), ("directory.sync_completed", None)]
