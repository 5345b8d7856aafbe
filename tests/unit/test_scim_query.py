"""dirhook's SQL answers SCIM filters, sorts and member PATCHes exactly as scim2-models'
own evaluation does (which it replaces where it can)."""

from __future__ import annotations

import pytest
from scim2_models import Group, PatchOp, ScimFilter, SearchRequest, User
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from dirhook.db.schema import Base, Directory, Organization
from dirhook.scim.handler import member_changes
from dirhook.scim.query import translate
from dirhook.scim.rows import ScimRows

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def rows():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.add(Directory(id="dir_1", organization_id="org_1", name="d", provider="scim"))
    store = ScimRows(sessions, "dir_1", scan_limit=10_000)
    for i in range(24):
        body = {"schemas": [USER], "id": f"u{i:02d}", "userName": f"User{i % 12}-{i}@Example.com"}
        if i % 3:
            body["emails"] = [{"value": f"mail{i % 5}@example.com"}, {"value": f"alt{i}@example.com"}]
        if i % 4:
            body["displayName"] = f"Person {i % 6}"
        if i % 5:
            body["externalId"] = f"ext-{i % 7}"
        store.store("User", body, None, create=True)
    store.store(
        "Group",
        {"schemas": [GROUP], "id": "g1", "displayName": "Staff", "members": [{"value": "u01"}, {"value": "u02"}]},
        None,
        create=True,
    )
    return store


FILTERS = [
    'userName eq "user3-3@example.com"',
    'userName eq "USER3-15@EXAMPLE.COM"',
    'userName ne "user3-3@example.com"',
    'userName sw "user1"',
    'externalId eq "ext-3"',
    'externalId eq "EXT-3"',
    "externalId pr",
    "not (externalId pr)",
    'displayName eq "person 2"',
    'emails[value eq "MAIL2@example.com"]',
    'emails.value eq "alt4@example.com"',
    "emails pr",
    'emails[value eq "mail1@example.com"] and displayName eq "Person 1"',
    'userName eq "user0-0@example.com" or emails.value eq "mail3@example.com"',
    'not (userName eq "user0-0@example.com" or externalId eq "ext-1")',
    'id eq "u07"',
    'meta.lastModified gt "2000-01-01T00:00:00Z"',
    'meta.created lt "2000-01-01T00:00:00Z"',
]


@pytest.mark.parametrize("text", FILTERS)
def test_sql_finds_what_the_evaluator_finds(rows, text):
    scim_filter = ScimFilter[User](text)
    condition = translate(scim_filter, "dir_1", "User")
    assert condition is not None and condition.exact, text
    found = rows.search(["User"], scim_filter, None, False, 0, None, False)
    assert found.exact
    everything = rows.search(["User"], None, None, False, 0, None, False).rows
    expected = [b["id"] for _t, b in everything if scim_filter.match(User.model_validate(b))]
    assert [b["id"] for _t, b in found.rows] == expected
    assert found.total == len(expected)


@pytest.mark.parametrize(
    "text,exact",
    [
        ('emails[type eq "work" and value eq "mail1@example.com"]', False),  # narrowed, then evaluated
        ('userName eq "x" and name.givenName eq "Ada"', False),
        ('name.givenName eq "Ada"', None),  # not indexed: evaluated over the directory, bounded
        ('userName eq "x" or name.givenName eq "Ada"', None),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1"', None),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"', True),
    ],
)
def test_what_sql_cannot_say_is_left_to_the_evaluator(text, exact):
    condition = translate(ScimFilter[User](text), "dir_1", "User")
    assert (None if condition is None else condition.exact) is exact


@pytest.mark.parametrize("sort_by", ["userName", "externalId", "meta.created", "displayName"])
@pytest.mark.parametrize("order", [SearchRequest.SortOrder.ascending, SearchRequest.SortOrder.descending])
def test_sorted_pages_follow_scim2_models_order(rows, sort_by, order):
    request = SearchRequest(sort_by=sort_by, sort_order=order)
    everything = [User.model_validate(b) for _t, b in rows.search(["User"], None, None, False, 0, None, False).rows]

    def key(resource):
        value = request.sort_value(resource)
        return value is None, value if value is not None else "", resource.id

    expected = [u.id for u in sorted(everything, key=key, reverse=order == SearchRequest.SortOrder.descending)]
    found = rows.search(["User"], None, request.sort_by, order == SearchRequest.SortOrder.descending, 3, 10, False)
    if sort_by == "displayName":  # a user's displayName is indexed for filters, not for sorting
        assert not found.exact
        return
    assert found.exact and [b["id"] for _t, b in found.rows] == expected[3:13]


def test_members_are_rows_and_a_group_filter_reads_them(rows):
    found = rows.search(["Group"], ScimFilter[Group]('members[value eq "u02"]'), None, False, 0, None, True)
    assert [b["id"] for _t, b in found.rows] == ["g1"]
    assert [m["value"] for m in found.rows[0][1]["members"]] == ["u01", "u02"]
    assert [m.get("type") for m in found.rows[0][1]["members"]] == ["User", "User"]  # typed from the users
    changed = rows.change_members(
        "g1", {"u05": {"member_id": "u05", "member_type": None, "display": None}}, {"u01"}, None
    )
    assert set(changed.added) == {"u05"} and changed.removed == {"u01"} and "members" not in changed.body
    assert [m["value"] for m in rows.body("Group", "g1")["members"]] == ["u02", "u05"]
    unchanged = rows.change_members("g1", {}, {"u01"}, None)  # not a member any more: nothing to do
    assert not unchanged.changed and unchanged.body["meta"]["version"] == changed.body["meta"]["version"]
    rows.remove("User", "u02", None)
    after = rows.body("Group", "g1")
    assert [m["value"] for m in after["members"]] == ["u05"]
    assert after["meta"]["version"] != changed.body["meta"]["version"]


def _patch(*operations):
    return PatchOp[Group].model_validate(
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}
    )


def test_member_patches_are_read_as_row_changes():
    okta_add = {"op": "add", "path": "members", "value": [{"value": "a", "display": "A"}, {"value": "b"}]}
    okta_remove = {"op": "remove", "path": 'members[value eq "a"]'}
    entra_remove = {"op": "Remove", "path": "members", "value": [{"value": "b"}]}
    add, remove = member_changes(_patch(okta_add, okta_remove))
    assert set(add) == {"b"} and remove == {"a"} and add["b"]["member_id"] == "b"
    assert member_changes(_patch(entra_remove)) == ({}, {"b"})
    assert member_changes(_patch({"op": "add", "value": {"members": [{"value": "c"}]}}))[0].keys() == {"c"}
    # Anything else is scim2-server's: a replacement, a rename, removing every member.
    assert member_changes(_patch({"op": "replace", "path": "members", "value": [{"value": "c"}]})) is None
    assert member_changes(_patch(okta_add, {"op": "replace", "path": "displayName", "value": "x"})) is None
    assert member_changes(_patch({"op": "remove", "path": "members"})) is None
    assert member_changes(_patch({"op": "remove", "path": 'members[display eq "A"]'})) is None
