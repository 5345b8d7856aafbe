"""Recognizing users unchanged (dirhook.sync.unchanged) changes no outcome: a property test.

Two databases live through the same history of directory changes; after every change a full
pass runs on each, one engine recognizing unchanged users before normalizing them, the other
computing every user. Both must send the same events and store the same users. Ids are drawn
from one counter per database, so the two are comparable."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dirhook.db.engine import make_engine, make_sessionmaker, migrate
from dirhook.db.schema import Directory, EventRow, Organization, Role, RoleMappingRow, User
from dirhook.normalize import effective_mapping
from dirhook.providers.base import Changes, SourceEntry
from dirhook.sync import SyncEngine

MAPPING = effective_mapping("openldap", None)
# An attribute mapping change: the title read from another attribute.
OTHER_MAPPING = effective_mapping("openldap", {"user": {"title": {"source": "description"}}})
USERS = [f"u{i}" for i in range(5)]
GROUPS = [f"g{i}" for i in range(3)]


class Directory_:
    """The source's side: users and groups as an LDAP server holds them."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, str | None]] = {
            u: {"title": "Engineer", "cn": u.upper(), "description": None, "manager": None} for u in USERS[:4]
        }
        self.groups: dict[str, dict[str, Any]] = {g: {"name": g, "members": set()} for g in GROUPS}
        self.groups["g0"]["members"] = {"u0", "u1"}
        self.groups["g1"]["members"] = {"u2"}
        self.mapping = MAPPING

    def entries(self) -> tuple[list[SourceEntry], list[SourceEntry]]:
        users = []
        for uid, u in sorted(self.users.items()):
            attrs = {"entryUUID": [f"u-{uid}".encode()], "uid": [uid.encode()]}
            for name in ("title", "cn", "description"):
                if u[name] is not None:
                    attrs[name] = [u[name].encode()]  # type: ignore[union-attr]
            if u["manager"]:
                attrs["manager"] = [f"uid={u['manager']},ou=p".encode()]
            users.append(SourceEntry(ref=f"uid={uid},ou=p", attributes=attrs))
        groups = [
            SourceEntry(
                ref=f"cn={gid},ou=g",
                attributes={
                    "entryUUID": [f"g-{gid}".encode()],
                    "cn": [g["name"].encode()],
                    "member": [f"uid={m},ou=p".encode() for m in sorted(g["members"])] or [b"ou=p"],
                },
            )
            for gid, g in sorted(self.groups.items())
        ]
        return groups, users


# The changes a directory (or its operator) makes between two passes.
user_ids = st.sampled_from(USERS)
group_ids = st.sampled_from(GROUPS)
change = st.one_of(
    st.tuples(st.just("title"), user_ids, st.sampled_from(["Engineer", "Manager", "Director"])),
    st.tuples(st.just("cn"), user_ids, st.sampled_from(["A", "B"])),
    st.tuples(st.just("description"), user_ids, st.sampled_from([None, "Chief"])),
    st.tuples(st.just("manager"), user_ids, st.one_of(st.none(), user_ids)),
    st.tuples(st.just("join"), group_ids, user_ids),
    st.tuples(st.just("leave"), group_ids, user_ids),
    st.tuples(st.just("rename"), group_ids, st.sampled_from(["eng", "ops", "admins"])),
    st.tuples(st.just("add_user"), user_ids, st.none()),
    st.tuples(st.just("drop_user"), user_ids, st.none()),
    st.tuples(st.just("role_mapping"), st.sampled_from(["eng", "g1", "admins"]), st.none()),
    st.tuples(st.just("default_role"), st.booleans(), st.none()),
    st.tuples(st.just("attribute_mapping"), st.booleans(), st.none()),
    st.tuples(st.just("nothing"), st.none(), st.none()),
)


def apply(source: Directory_, databases: list[Any], step: tuple[str, Any, Any]) -> None:
    kind, a, b = step
    if kind in ("title", "cn", "description") and a in source.users:
        source.users[a][kind] = b
    elif kind == "manager" and a in source.users:
        source.users[a]["manager"] = b
    elif kind == "join":
        source.groups[a]["members"].add(b)
    elif kind == "leave":
        source.groups[a]["members"].discard(b)
    elif kind == "rename":
        source.groups[a]["name"] = b
    elif kind == "add_user" and a not in source.users:
        source.users[a] = {"title": "New", "cn": a.upper(), "description": None, "manager": None}
    elif kind == "drop_user":
        source.users.pop(a, None)
    elif kind == "attribute_mapping":
        source.mapping = OTHER_MAPPING if a else MAPPING
    elif kind in ("role_mapping", "default_role"):
        # An operator's change, written without the recompute the API would start: the next
        # full pass alone must bring every user's roles up to date.
        for db in databases:
            with db.begin() as s:
                if kind == "role_mapping":
                    if s.get(RoleMappingRow, f"rm_{a}") is None:
                        s.add(
                            RoleMappingRow(
                                id=f"rm_{a}", directory_id="dir_1", role_id="rol_admin", match="name", pattern=a
                            )
                        )
                else:
                    s.get(Role, "rol_member").is_default = a  # type: ignore[union-attr]


def _strip(value: Any) -> Any:
    """An event's data less what differs between two runs by the clock alone."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in ("updated_at", "created_at")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@contextmanager
def ids_from(counter: itertools.count):
    def next_id(prefix: str) -> str:
        return f"{prefix}_{next(counter):06d}"

    with mock.patch("dirhook.sync.users.new_id", next_id), mock.patch("dirhook.sync.groups.new_id", next_id):
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite"
    migrate(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    sm = make_sessionmaker(engine)
    with sm.begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.flush()
        s.add(Directory(id="dir_1", organization_id="org_1", name="d", provider="ldap", config={}))
        s.add(Role(id="rol_admin", organization_id="org_1", slug="admin", name="Admin", priority=10))
        s.add(Role(id="rol_member", organization_id="org_1", slug="member", name="Member", priority=1))
    engine.dispose()  # its write-ahead log checkpointed: the file alone is the database
    return path


def database(template: Path, workdir: Path, name: str):
    shutil.copy(template, workdir / name)
    return make_sessionmaker(make_engine(f"sqlite:///{workdir / name}"))


def full_pass(sessions, source: Directory_, counter: itertools.count, skip: bool):
    groups, users = source.entries()
    changes = Changes(full=True, groups=iter(groups), users=iter(users), next_cursor={})
    with ids_from(counter):
        return SyncEngine(sessions, "dir_1", source.mapping, chunk_size=2, skip_unchanged=skip).run(changes)


def sent(sessions, after: int) -> tuple[int, list[str]]:
    with sessions() as s:
        rows = s.execute(select(EventRow.sequence, EventRow.body).where(EventRow.sequence > after)).all()
    bodies = [json.loads(b) for _seq, b in rows]
    out = sorted(
        json.dumps([e["type"], _strip(e["data"]), e.get("previous_attributes")], sort_keys=True) for e in bodies
    )
    return max([after, *(seq for seq, _b in rows)]), out


def stored(sessions) -> dict[str, Any]:
    with sessions() as s:
        return {
            u.external_id: (u.id, u.state, u.version, u.content_hash, u.attributes)
            for u in s.scalars(select(User).where(User.directory_id == "dir_1"))
        }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(change, min_size=1, max_size=8))
def test_recognizing_unchanged_users_changes_no_event_and_no_state(template, history):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        skipping, computing = database(template, work, "skip.sqlite"), database(template, work, "all.sqlite")
        counters = {id(skipping): itertools.count(), id(computing): itertools.count()}
        source = Directory_()
        marks = {id(skipping): 0, id(computing): 0}
        for step in [("nothing", None, None), *history]:
            apply(source, [skipping, computing], step)
            results = {}
            for db, skip in ((skipping, True), (computing, False)):
                results[skip] = full_pass(db, source, counters[id(db)], skip)
            marks[id(skipping)], sent_skipping = sent(skipping, marks[id(skipping)])
            marks[id(computing)], sent_computing = sent(computing, marks[id(computing)])
            assert sent_skipping == sent_computing, step
            assert stored(skipping) == stored(computing), step
            assert results[True].warnings == results[False].warnings


def test_a_full_pass_over_an_unchanged_directory_recognizes_every_user(template, tmp_path):
    sessions = database(template, tmp_path, "db.sqlite")
    counter = itertools.count()
    source = Directory_()
    source.users["u1"]["manager"] = "u0"
    first = full_pass(sessions, source, counter, True)
    assert first.users_unchanged == 0 and first.users_written == 4
    again = full_pass(sessions, source, counter, True)
    assert (again.users_read, again.users_unchanged, again.users_written, again.events) == (4, 4, 0, {})
    # One membership and one attribute change: those two users are computed, and sent.
    source.groups["g1"]["members"].add("u3")
    source.users["u0"]["title"] = "Chief"
    third = full_pass(sessions, source, counter, True)
    assert third.users_unchanged == 2
    assert third.events == {"user.updated": 2, "group.user_added": 1, "directory.sync_completed": 1}
