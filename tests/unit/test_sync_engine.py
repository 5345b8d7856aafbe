"""The sync engine against a scripted source and a SQLite file: no LDAP, no Temporal."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from dirhook.db.engine import make_engine, make_sessionmaker, migrate
from dirhook.db.schema import Directory, EventRow, Organization
from dirhook.normalize import effective_mapping
from dirhook.providers.base import Changes, SourceEntry
from dirhook.sync import SyncEngine

MAPPING = effective_mapping("openldap", None)


def user(uid: str, title: str = "Engineer", manager: str | None = None) -> SourceEntry:
    attrs = {
        "entryUUID": [f"u-{uid}".encode()],
        "uid": [uid.encode()],
        "title": [title.encode()],
        "cn": [uid.upper().encode()],
    }
    if manager:
        attrs["manager"] = [f"uid={manager},ou=p".encode()]
    return SourceEntry(ref=f"uid={uid},ou=p", attributes=attrs)


def group(name: str, *members: str) -> SourceEntry:
    return SourceEntry(
        ref=f"cn={name},ou=g",
        attributes={
            "entryUUID": [f"g-{name}".encode()],
            "cn": [name.encode()],
            "member": [f"uid={m},ou=p".encode() for m in members] or [b"ou=p"],
        },
    )


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sm = make_sessionmaker(make_engine(url))
    with sm.begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.flush()
        s.add(Directory(id="dir_1", organization_id="org_1", name="d", provider="ldap", config={}))
    return sm


def run(sessions, groups, users, full=True, user_ids=None, group_ids=None):
    changes = Changes(
        full=full,
        groups=iter(groups),
        users=iter(users),
        user_ids=(lambda: iter(user_ids)) if user_ids is not None else None,
        group_ids=(lambda: iter(group_ids)) if group_ids is not None else None,
        next_cursor={"modify_timestamp": "x"},
    )
    return SyncEngine(sessions, "dir_1", MAPPING, chunk_size=2).run(changes)


def events(sessions, after: int = 0) -> list[dict]:
    with sessions() as s:
        return [
            json.loads(b)
            for b in s.scalars(select(EventRow.body).where(EventRow.sequence > after).order_by(EventRow.sequence))
        ]


def types(evts):
    return [e["type"] for e in evts if e["type"] != "directory.sync_completed"]


def test_first_full_pass_then_rerun_emits_nothing(sessions):
    r = run(sessions, [group("eng", "a", "b")], [user("a"), user("b"), user("c", manager="a")])
    assert r.events == {"group.created": 1, "user.created": 3, "group.user_added": 2, "directory.sync_completed": 1}
    c = next(e["data"] for e in events(sessions) if e["type"] == "user.created" and e["data"]["username"] == "c")
    a = next(e["data"] for e in events(sessions) if e["type"] == "user.created" and e["data"]["username"] == "a")
    assert c["manager_id"] == a["id"]
    assert run(sessions, [group("eng", "a", "b")], [user("a"), user("b"), user("c", manager="a")]).events == {}


def test_manager_listed_after_the_report_is_resolved_in_the_same_pass(sessions):
    run(sessions, [], [user("z", manager="y"), user("m"), user("y")])  # chunk size 2: y comes in a later chunk
    evts = events(sessions)
    y = next(e["data"] for e in evts if e["data"].get("username") == "y")
    z_events = [e for e in evts if e["data"].get("username") == "z"]
    assert z_events[-1]["data"]["manager_id"] == y["id"]
    assert types(z_events) == ["user.created", "user.updated"]
    assert z_events[-1]["previous_attributes"] == {"manager_id": None}


def test_incremental_membership_change_cascades_to_the_user(sessions):
    run(sessions, [group("eng", "a"), group("ops", "b")], [user("a"), user("b")])
    last = events(sessions)[-1]["sequence"]
    # Only the group changed at the source: b joins eng.
    run(sessions, [group("eng", "a", "b")], [], full=False, user_ids=["u-a", "u-b"], group_ids=["g-eng", "g-ops"])
    new = events(sessions, last)
    assert types(new) == ["user.updated", "group.user_added"]
    assert [g["name"] for g in new[0]["data"]["groups"]] == ["eng", "ops"]
    assert new[0]["previous_attributes"]["groups"][0]["name"] == "ops"


def test_deleted_group_removes_memberships_and_updates_members(sessions):
    run(sessions, [group("eng", "a"), group("ops", "a")], [user("a")])
    last = events(sessions)[-1]["sequence"]
    run(sessions, [group("ops", "a")], [user("a")])
    new = events(sessions, last)
    assert types(new) == ["group.user_removed", "group.deleted", "user.updated"]
    assert [g["name"] for g in new[2]["data"]["groups"]] == ["ops"]


def test_a_source_that_returns_nothing_deletes_nothing(sessions):
    run(sessions, [group("eng", "a")], [user("a")])
    last = events(sessions)[-1]["sequence"]
    r = run(sessions, [], [])
    assert events(sessions, last) == []
    assert "no users" in " ".join(r.warnings) and "no groups" in " ".join(r.warnings)
    r = run(sessions, [group("eng", "a")], [user("a")], full=False, user_ids=[], group_ids=["g-eng"])
    assert events(sessions, last) == [] and r.warnings


def test_incremental_deletion_from_id_listing(sessions):
    run(sessions, [group("eng", "a", "b")], [user("a"), user("b")])
    last = events(sessions)[-1]["sequence"]
    run(sessions, [], [], full=False, user_ids=["u-a"], group_ids=["g-eng"])
    new = events(sessions, last)
    assert types(new) == ["group.user_removed", "user.deleted"]
    assert new[1]["data"]["username"] == "b"


def test_endpoints_are_told_after_each_committed_chunk(sessions):
    from dirhook.db.schema import Delivery, Endpoint

    with sessions.begin() as s:
        s.add(Endpoint(id="ep_1", organization_id="org_1", url="http://127.0.0.1:9/", secret="whsec_x"))
    calls: list[tuple[set, int]] = []

    def on_commit(endpoints: set[str]) -> None:
        with sessions() as s:  # what the callback is told about is already committed
            calls.append((set(endpoints), s.query(Delivery).count()))

    changes = Changes(
        full=True, groups=iter([group("eng", "a")]), users=iter([user(u) for u in "abcde"]), next_cursor={}
    )
    SyncEngine(sessions, "dir_1", MAPPING, chunk_size=2, on_commit=on_commit).run(changes)
    assert len(calls) >= 3 and all(endpoints == {"ep_1"} for endpoints, _n in calls)
    assert [n for _e, n in calls] == sorted(n for _e, n in calls) and calls[0][1] > 0
