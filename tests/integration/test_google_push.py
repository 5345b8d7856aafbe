"""Google Workspace in real time: push channels opened by passes, notifications received on
the API's public https address (a TLS proxy in front of the stack's API), each starting a
pass that reads only what it names."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from dirhook.db.schema import GoogleNotification
from tests.support.e2e_helpers import all_events, sync
from tests.support.google_admin import Account
from tests.support.google_helpers import google_directory, google_user
from tests.support.wait import wait_for

SQLITE_ONLY = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
CHANNELS = 6  # users.watch for add, delete, makeAdmin, undelete, update; activities.watch of admin
# The bound: a change reaches the receiver within 5 s of its notification.
NOTIFIED_WITHIN_SECONDS = 5.0


def open_channels(account: Account) -> list[dict]:
    now_ms = time.time() * 1000
    return [c for c in account.channels.values() if int(c["expiration"]) > now_ms]


async def one_user_directory(stack, google_admin, receiver) -> tuple[Account, str]:
    account = google_admin.new_account()
    google_user(account, 1)
    directory, _endpoint, _route = await google_directory(stack, google_admin, receiver, account)
    return account, directory["id"]


def entity_events(route, since: int) -> list[dict]:
    return [e for e in route.events()[since:] if e["type"] != "directory.sync_completed"]


@SQLITE_ONLY
@pytest.mark.timeout(180)
async def test_each_change_reaches_the_receiver_within_seconds_of_its_notification(stack, google_admin, receiver):
    account = google_admin.new_account()
    ids = [google_user(account, i) for i in range(1, 21)]
    team = account.put_group("team@example.com", "team")
    others = account.put_group("others@example.com", "others")
    for uid in ids[:10]:
        account.add_member(team, uid)
    directory, _endpoint, route = await google_directory(stack, google_admin, receiver, account)
    d = directory["id"]
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    assert len(open_channels(account)) == CHANNELS
    assert {c["address"] for c in open_channels(account)} == {
        f"{stack.settings.google_push_url}/google/notifications/{d}"
    }
    await wait_for(lambda: len(route.events("user.created")) == 20, 30, "the first pass delivered")
    # Each channel's first message (`sync`, sent before watch() answers) already finds it.
    await wait_for(lambda: sum(1 for n in account.notifications if n[2] == "sync") == CHANNELS, 10, "6 syncs")
    assert [n[1] for n in account.notifications if n[2] == "sync"] == [204] * CHANNELS
    runs_before = len((await stack.api.get(f"/v1/directories/{d}/sync-runs", params={"limit": 100})).json())

    uid = ids[0]
    steps = [
        ("renamed", lambda: account.put_user("renamed@example.com", id=uid), ["user.updated"]),
        ("suspended", lambda: account.put_user("renamed@example.com", id=uid, suspended=True), ["user.updated"]),
        (
            "moved",
            lambda: account.put_user("renamed@example.com", id=uid, orgUnitPath="/Sales"),
            ["user.updated"],
        ),
        # A membership is two events, as from every provider: the group's, and the user's
        # `groups` changed.
        ("added to a group", lambda: account.add_member(others, uid), ["group.user_added", "user.updated"]),
        ("removed from a group", lambda: account.remove_member(team, uid), ["group.user_removed", "user.updated"]),
        # Deleted while still in `others`: that membership ends with the user.
        ("deleted", lambda: account.delete_user(uid), ["group.user_removed", "user.deleted"]),
    ]
    seen = []
    for what, change, expected in steps:
        since, notified = len(route.events()), len(account.notifications)
        started = time.monotonic()
        change()
        await wait_for(
            lambda since=since, expected=expected: len(entity_events(route, since)) >= len(expected),
            NOTIFIED_WITHIN_SECONDS,
            f"the events of the user {what}",
        )
        took = time.monotonic() - started
        # The notification reached the API (204), and the receiver has exactly its events.
        assert [status for _at, status, _state in account.notifications[notified:]] == [204], what
        got = entity_events(route, since)
        assert sorted(e["type"] for e in got) == expected, (
            what,
            [(e["type"], e.get("previous_attributes")) for e in got],
        )
        seen.append((what, {e["type"]: e for e in got}, took))

    by_step = {what: events for what, events, _took in seen}
    renamed = by_step["renamed"]["user.updated"]
    assert renamed["data"]["username"] == "renamed@example.com"
    assert renamed["previous_attributes"]["username"] == "user00001@example.com"
    assert by_step["suspended"]["user.updated"]["data"]["active"] is False
    assert by_step["moved"]["user.updated"]["data"]["custom_attributes"]["org_unit_path"] == "/Sales"
    assert by_step["added to a group"]["group.user_added"]["data"]["group"]["name"] == "others"
    assert by_step["removed from a group"]["group.user_removed"]["data"]["group"]["name"] == "team"
    assert by_step["deleted"]["user.deleted"]["data"]["id"] == renamed["data"]["id"]
    # No schedule ran them: each was a pass of its own notification, reading only that user
    # or group (users.get, or the group's members), never the whole account again.
    runs = (await stack.api.get(f"/v1/directories/{d}/sync-runs", params={"limit": 100})).json()
    assert len(runs) - runs_before >= len(steps)
    listings = [path for _at, _code, path in account.requests if path.split("?")[0].endswith("/users")]
    assert len(listings) == 1, listings  # the first pass's users.list only
    # Nothing else changed: every other user is as the first pass left them.
    assert len(await all_events(stack, d)) == 20 + 2 + 10 + 1 + sum(len(e) for _w, _c, e in steps) + len(steps)
    print("seconds from change to receiver:", {what: round(took, 2) for what, _e, took in seen})

    # A burst (an admin suspends the other 19 at once): notifications arriving while a pass
    # runs collapse into the next one, and each user is updated exactly once.
    since, runs_before = len(route.events()), len(runs)
    for i, other in enumerate(ids[1:], start=2):
        account.put_user(f"user{i:05d}@example.com", id=other, suspended=True)
    await wait_for(lambda: len(entity_events(route, since)) >= 19, 30, "the burst's 19 updates")
    burst = entity_events(route, since)
    assert sorted(e["data"]["external_id"] for e in burst) == sorted(ids[1:])
    assert all(e["type"] == "user.updated" and e["data"]["active"] is False for e in burst)
    runs = (await stack.api.get(f"/v1/directories/{d}/sync-runs", params={"limit": 100})).json()
    print("passes for the burst of 19 notifications:", len(runs) - runs_before)


@SQLITE_ONLY
async def test_notifications_are_checked_by_channel_and_token(stack, google_admin, receiver):
    account, d = await one_user_directory(stack, google_admin, receiver)
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    channel = next(c for c in open_channels(account) if c["watching"] == "users.update")
    path = f"/google/notifications/{d}"
    good = {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-State": "update",
    }
    body = {"kind": "admin#directory#user", "id": "1", "primaryEmail": "x@example.com"}
    cases = [
        ({**good, "X-Goog-Channel-Token": "forged"}, body, 404),
        ({**good, "X-Goog-Channel-ID": "no-such-channel"}, body, 404),
        ({**good, "X-Goog-Resource-State": "sync"}, None, 204),
    ]
    for headers, payload, status in cases:
        r = await stack.api.post(path, headers={"authorization": "", **headers}, json=payload)
        assert r.status_code == status, (headers, r.text)
    other = await stack.api.post(
        "/v1/directories",
        json={"name": "other", "provider": "scim"},
    )
    assert other.status_code == 201, other.text
    r = await stack.api.post(f"/google/notifications/{other.json()['id']}", headers=good, json=body)
    assert r.status_code == 404  # the channel is another directory's
    r = await stack.api.post(path, headers=good, content=b"{not json")
    assert r.status_code == 400 and "not JSON" in r.text
    r = await stack.api.post(path, headers={"X-Goog-Channel-ID": channel["id"]}, json=body)
    assert r.status_code == 422 and "x-goog-channel-token" in r.text
    with stack.sessions() as s:
        recorded = s.scalar(select(func.count()).where(GoogleNotification.directory_id == d))
    assert recorded == 0  # none of those recorded anything


@SQLITE_ONLY
async def test_channels_are_renewed_before_their_end_and_stopped_with_the_directory(stack, google_admin, receiver):
    account, d = await one_user_directory(stack, google_admin, receiver)
    cap = google_admin.max_channel_seconds
    google_admin.max_channel_seconds = 600  # well within a quarter of the 6 hours asked for
    try:
        assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
        first = {c["id"] for c in open_channels(account)}
        assert len(first) == CHANNELS
        assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
        second = {c["id"] for c in open_channels(account)}
        assert len(second) == CHANNELS and not first & second  # replaced, the old ones stopped
        assert set(account.channels) == second
    finally:
        google_admin.max_channel_seconds = cap
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    third = set(account.channels)
    assert len(third) == CHANNELS and not second & third  # 600 s: still near their end
    assert (await sync(stack, d, "full"))["last_run"]["status"] == "succeeded"
    assert set(account.channels) == third  # 6 hours: kept

    r = await stack.api.delete(f"/v1/directories/{d}")
    assert r.status_code == 204, r.text
    assert account.channels == {}  # Google notifies no more
