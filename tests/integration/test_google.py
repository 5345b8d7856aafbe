"""Google Workspace through the Admin SDK Directory API, against the local Admin SDK
(tests/support/google_admin.py)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError

from tests.support.e2e_helpers import all_events, canonical, connect_directory, run_cli, sync
from tests.support.google_helpers import google_directory, google_settings, google_user
from tests.support.slapd import SUFFIX, expected_memberships, ldap_tool
from tests.support.wait import wait_for

SQLITE_ONLY = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
USERS_READONLY = "https://www.googleapis.com/auth/admin.directory.user.readonly"


@SQLITE_ONLY
@pytest.mark.timeout(300)
async def test_a_full_sync_delivers_what_ldap_delivers_for_the_same_people(stack, google_admin, slapd, receiver):
    """1,200 users in 50 groups; group000 also holds everyone (1,200 members: six pages of
    members.list), group001 is a member of group002."""
    n_users, n_groups = 1200, 50
    account = google_admin.new_account()
    ids = [google_user(account, i) for i in range(n_users)]
    groups = [account.put_group(f"group{g:03d}@example.com", f"group{g:03d}", f"Group {g}") for g in range(n_groups)]
    for i, uid in enumerate(ids):
        account.add_member(groups[0], uid)  # everyone
        account.add_member(groups[i % n_groups], uid)
        if i % 3 == 0:
            account.add_member(groups[(i + 1) % n_groups], uid)
    account.add_member(groups[2], groups[1])
    google, _endpoint, google_route = await google_directory(stack, google_admin, receiver, account)

    ldap = await connect_directory(stack, slapd, receiver, n_users, n_groups)
    base = f"ou=groups,ou={ldap.ou},{SUFFIX}"
    in_group000 = {i for i in range(n_users) if i % n_groups == 0 or (i % 3 == 0 and (i + 1) % n_groups == 0)}
    everyone = "".join(f"member: {ldap.user_dn(i)}\n" for i in range(n_users) if i not in in_group000)
    nested = f"member: cn=group001,{base}\n"
    modify = (
        f"dn: cn=group000,{base}\nchangetype: modify\nadd: member\n{everyone}\n"
        f"dn: cn=group002,{base}\nchangetype: modify\nadd: member\n{nested}"
    )
    await asyncio.to_thread(ldap_tool, "ldapmodify", slapd, modify)
    # The same person's username is their address in Google (primaryEmail), their uid in LDAP.
    r = await stack.api.patch(
        f"/v1/directories/{ldap.id}", json={"attribute_mapping": {"user": {"username": {"source": "mail"}}}}
    )
    assert r.status_code == 200, r.text

    for directory_id in (google["id"], ldap.id):
        status = await sync(stack, directory_id, "full", timeout=240)
        assert status["last_run"]["status"] == "succeeded", status
    from_google, from_ldap = await all_events(stack, google["id"]), await all_events(stack, ldap.id)
    extra_in_big = (
        n_users - n_users // n_groups - sum(1 for i in range(n_users) if i % 3 == 0 and (i + 1) % n_groups == 0)
    )
    at_least = n_users + n_groups + expected_memberships(n_users, n_groups) + extra_in_big
    assert len(from_google) == len(from_ldap) >= at_least
    assert sorted(map(canonical, from_google)) == sorted(map(canonical, from_ldap))
    big = [e for e in from_google if e["type"] == "group.user_added" and e["data"]["group"]["name"] == "group000"]
    assert len({e["data"]["user"]["username"] for e in big}) == n_users  # the big group, whole
    await wait_for(lambda: len(google_route.events()) == len(from_google), 120, "every Google event at the receiver")
    sample = next(e for e in from_google if e["type"] == "user.created")["data"]
    assert sample["custom_attributes"]["employee_id"] == str(1000 + int(sample["username"][4:9]))
    assert sample["external_id"] in ids and sample["custom_attributes"]["org_unit_path"] == "/"


@SQLITE_ONLY
async def test_suspension_org_unit_scope_managers_and_deletions(stack, google_admin, receiver):
    account = google_admin.new_account()
    a = google_user(account, 1, orgUnitPath="/Sales")
    b = google_user(
        account, 2, orgUnitPath="/Sales/EMEA", relations=[{"type": "manager", "value": "user00001@example.com"}]
    )
    google_user(account, 3, orgUnitPath="/Engineering")
    google_user(account, 4, orgUnitPath="/Sales")  # stays: a listing of nobody deletes nobody
    team = account.put_group("team@example.com", "team")
    account.add_member(team, a)
    account.add_member(team, b)
    directory, _endpoint, route = await google_directory(stack, google_admin, receiver, account, org_units=["/Sales"])
    d = directory["id"]
    # Two of two users go below: deletion protection would hold them (tested on its own).
    r = await stack.api.patch(f"/v1/directories/{d}", json={"deletion_threshold_percent": 100})
    assert r.status_code == 200, r.text
    status = await sync(stack, d, "full")
    assert status["last_run"]["status"] == "succeeded", status
    users = {u["username"]: u for u in (await stack.api.get(f"/v1/directories/{d}/users")).json()["data"]}
    assert sorted(users) == [f"user0000{i}@example.com" for i in (1, 2, 4)]  # /Engineering is out of scope
    assert users["user00002@example.com"]["manager_id"] == users["user00001@example.com"]["id"]
    before = len(await all_events(stack, d))

    account.put_user("user00002@example.com", id=b, suspended=True)
    status = await sync(stack, d, "full")
    got = (await all_events(stack, d))[before:]
    assert [e["type"] for e in got] == ["user.updated", "directory.sync_completed"]
    assert got[0]["data"]["active"] is False and got[0]["previous_attributes"]["active"] is True
    assert got[0]["previous_attributes"]["raw_attributes"]["suspended"] == ["false"]
    account.put_user("user00002@example.com", id=b, orgUnitPath="/Engineering")  # leaves the scope
    account.delete_user(a)
    status = await sync(stack, d, "full")
    assert status["last_run"]["status"] == "succeeded", status
    gone = [e for e in (await all_events(stack, d))[before + 2 :] if e["type"] == "user.deleted"]
    assert sorted(e["data"]["username"] for e in gone) == ["user00001@example.com", "user00002@example.com"]
    await wait_for(lambda: any(e["type"] == "user.deleted" for e in route.events()), 30, "the deletions delivered")


@SQLITE_ONLY
async def test_a_listing_that_fails_or_is_cut_short_deletes_nothing(stack, google_admin, receiver):
    account = google_admin.new_account()
    for i in range(450):
        google_user(account, i)
    directory, _endpoint, _route = await google_directory(
        stack, google_admin, receiver, account, page_size=100, retries=1
    )
    d = directory["id"]
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    before = await all_events(stack, d)

    for fault, words in (("503", "503 backendError"), ("cut", "cannot read users.list")):
        account.users_page_fault = (2, fault)  # users 201… never arrive
        r = await stack.api.post(f"/v1/directories/{d}/sync", params={"mode": "full"})
        handle = stack.client.get_workflow_handle(r.json()["workflow_id"], run_id=r.json()["run_id"])
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 120)
        status = (await stack.api.get(f"/v1/directories/{d}/sync")).json()
        assert words in status["error"], status
        assert await all_events(stack, d) == before  # nothing deleted, nothing at all
        listed = (await stack.api.get(f"/v1/directories/{d}/users", params={"limit": 500})).json()["data"]
        assert len(listed) == 450
    account.users_page_fault = None
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    assert len(await all_events(stack, d)) == len(before)  # the mended pass found nothing to send


@SQLITE_ONLY
async def test_quota_errors_are_waited_out(stack, google_admin, receiver):
    account = google_admin.new_account()
    google_user(account, 1)
    directory, _endpoint, route = await google_directory(stack, google_admin, receiver, account)
    account.quota_errors = 2
    status = await sync(stack, directory["id"], "full")
    assert status["last_run"]["status"] == "succeeded", status
    codes = [code for _at, code, _path in account.requests]
    assert codes[:3] == [403, 403, 200], codes  # the same request, retried by the client library
    await wait_for(lambda: len(route.events()) == 2, 30, "the user and the pass")


@SQLITE_ONLY
async def test_missing_delegation_fails_at_once_naming_the_scopes(stack, google_admin, receiver, tmp_path):
    account = google_admin.new_account()
    google_user(account, 1)
    account.delegated_scopes = {USERS_READONLY}  # the admin granted one of the three
    body = {
        "name": "no delegation",
        "provider": "google",
        "service_account_key": account.key_json(),
        "google": google_settings(google_admin, account),
    }
    r = await stack.api.post("/v1/directories", json=body, params={"test": "true"})
    assert r.status_code == 409, r.text
    assert "unauthorized_client" in r.json()["detail"] and "admin.directory.group.readonly" in r.json()["detail"]

    directory, _endpoint, route = await google_directory(stack, google_admin, receiver, account)
    tokens_before = len(account.token_requests)
    r = await stack.api.post(f"/v1/directories/{directory['id']}/sync", params={"mode": "full"})
    handle = stack.client.get_workflow_handle(r.json()["workflow_id"], run_id=r.json()["run_id"])
    with pytest.raises(WorkflowFailureError):  # no retries of a refusal
        await asyncio.wait_for(handle.result(), 60)
    status = (await stack.api.get(f"/v1/directories/{directory['id']}/sync")).json()
    assert "Domain-wide delegation" in status["error"] and "admin.reports.audit.readonly" in status["error"]
    assert account.client_id in status["error"]
    assert len(account.token_requests) - tokens_before <= 2 and account.requests == []  # no retry storm
    assert route.events() == []
    shown = await run_cli(stack, tmp_path, "directories", "show", directory["id"])
    assert "Domain-wide delegation" in shown


async def test_the_key_is_write_only_and_checked(stack, google_admin):
    account = google_admin.new_account()
    key = account.key_json()
    settings = google_settings(google_admin, account)
    for bad, words in (
        ("not json", "not JSON"),
        ('{"type": "authorized_user"}', "not a service account key"),
        ('{"type": "service_account", "client_email": "x@y.z"}', "lacks"),
    ):
        r = await stack.api.post(
            "/v1/directories",
            json={"name": "g", "provider": "google", "service_account_key": bad, "google": settings},
        )
        assert r.status_code == 422 and words in r.text, r.text
    r = await stack.api.post("/v1/directories", json={"name": "g", "provider": "google", "google": settings})
    assert r.status_code == 422 and "service_account_key" in r.text
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": "g",
            "provider": "google",
            "service_account_key": key,
            "google": {**settings, "org_units": ["Sales"]},
        },
    )
    assert r.status_code == 422 and "org unit path" in r.text
    r = await stack.api.post(
        "/v1/directories", json={"name": "g", "provider": "google", "service_account_key": key, "google": settings}
    )
    assert r.status_code == 201, r.text
    d = r.json()
    secret_part = key.split("PRIVATE KEY-----")[1][2:42]  # a piece of the private key itself
    assert d["has_service_account_key"] is True and secret_part not in r.text
    shown = await stack.api.get(f"/v1/directories/{d['id']}")
    assert secret_part not in shown.text
    # Pointing the key at another token endpoint needs the key again.
    r = await stack.api.patch(
        f"/v1/directories/{d['id']}", json={"google": {"token_uri": "https://evil.example/token"}}
    )
    assert r.status_code == 422 and "service_account_key" in r.text
