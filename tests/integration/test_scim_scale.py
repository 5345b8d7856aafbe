"""SCIM at identity-provider scale (issue 15): listings, lookups and member changes cost
what they cost in a small directory; /Bulk is bounded and counted against the rate limit.

The large directories are seeded straight into the SCIM tables (rows shaped exactly as the
storage writes them: a body stored by a real POST, cloned); every request then goes through
the SCIM API. Times are compared as ratios to the small case measured in the same run
(medians), never against an absolute bound.
"""

from __future__ import annotations

import statistics
import time
import uuid
from copy import deepcopy

import httpx
import pytest
from sqlalchemy import func, select

from dirhook.api.app import create_app
from dirhook.config import Settings
from dirhook.db.schema import table_of
from dirhook.db.scim_tables import ScimMember, ScimResource, ScimValue
from dirhook.scim.index import indexed_values, keys, version_of
from tests.conftest import unique
from tests.support.scim_helpers import GROUP, USER, scim_directory, summary
from tests.support.wait import wait_for

RATIO = 3.0  # how much slower the large case may be than the small one (medians)
REPEAT = 9


def seed_users(sessions, directory_id: str, template: tuple[dict, object], n: int) -> list[str]:
    """n users like ``template`` (a body as the storage stored it, and its creation time),
    with their indexed values."""
    template, created = template
    ids, rows, values = [], [], []
    for i in range(n):
        body = deepcopy(template)
        body["id"] = uuid.uuid4().hex
        body["userName"] = f"seeded{i:06d}@scale.example"
        body["emails"] = [{"value": f"seeded{i:06d}@mail.scale.example", "primary": True}]
        match_key, unique_key = keys("User", body)
        body["meta"]["version"] = version_of(body)
        ids.append(body["id"])
        rows.append(
            {
                "directory_id": directory_id,
                "id": body["id"],
                "resource_type": "User",
                "match_key": match_key,
                "unique_key": unique_key,
                "external_id": None,
                "body": body,
                "version": body["meta"]["version"],
                "members_revision": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
        values += [
            {"directory_id": directory_id, "resource_id": body["id"], "attribute": a, "value": v}
            for a, v in indexed_values("User", body)
        ]
    with sessions.begin() as s:
        s.execute(table_of(ScimResource).insert(), rows)
        s.execute(table_of(ScimValue).insert(), values)
    return ids


def stored_template(sessions, directory_id: str, resource_id: str) -> tuple[dict, object]:
    with sessions() as s:
        row = s.get(ScimResource, (directory_id, resource_id))
        return deepcopy(row.body), row.created_at


async def median_seconds(call) -> float:
    await call()  # warm
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scim_app(stack, **limits) -> httpx.AsyncClient:
    """A second API process on the stack's database (its writes here touch no endpoint)."""
    settings = Settings(
        data_dir=stack.settings.data_dir,
        database_url=stack.settings.sqlalchemy_url,
        admin_token="t" * 32,
        encryption_keys=stack.settings.encryption_keys,
        scim_rate_limit_per_second=limits.pop("rate", 10_000.0),
        scim_rate_limit_burst=limits.pop("burst", 20_000.0),
        **limits,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://dirhook")


async def directory(stack) -> dict:
    r = await stack.api.post("/v1/directories", json={"name": unique("scale-"), "provider": "scim"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_pages_and_lookups_at_20000_users_cost_what_they_cost_at_100(stack):
    small, large = await directory(stack), await directory(stack)
    async with scim_app(stack) as app:
        sizes = {}
        for d, n in ((small, 100), (large, 20_000)):
            auth = {"authorization": f"Bearer {d['scim_token']}"}
            first = await app.post(
                f"/scim/v2/{d['id']}/Users",
                json={"schemas": [USER], "userName": "first@scale.example", "name": {"givenName": "First"}},
                headers=auth,
            )
            assert first.status_code == 201, first.text
            template = stored_template(stack.sessions, d["id"], first.json()["id"])
            seed_users(stack.sessions, d["id"], template, n - 1)
            sizes[d["id"]] = n

        async def get(d, **params):
            r = await app.get(
                f"/scim/v2/{d['id']}/Users", params=params, headers={"authorization": f"Bearer {d['scim_token']}"}
            )
            assert r.status_code == 200, r.text
            return r.json()

        # Right answers first, at 20,000.
        page = await get(large, startIndex=1, count=100)
        assert page["totalResults"] == 20_000 and len(page["Resources"]) == 100
        last = await get(large, startIndex=19_951, count=100)
        assert last["totalResults"] == 20_000 and len(last["Resources"]) == 50 and last["startIndex"] == 19_951
        everyone = {r["id"] for r in page["Resources"]} | {r["id"] for r in last["Resources"]}
        assert len(everyone) == 150  # pages do not overlap
        found = await get(large, filter='userName eq "SEEDED012345@scale.example"')
        assert [r["userName"] for r in found["Resources"]] == ["seeded012345@scale.example"]
        by_mail = await get(large, filter='emails[value eq "seeded000042@mail.scale.example"]')
        assert [r["userName"] for r in by_mail["Resources"]] == ["seeded000042@scale.example"]
        either = await get(large, filter='userName eq "first@scale.example" or emails.value eq "x@y.example"')
        assert either["totalResults"] == 1
        recent = await get(large, filter='meta.lastModified gt "2000-01-01T00:00:00Z"', count=1)
        assert recent["totalResults"] == 20_000
        # A filter SQL cannot answer is evaluated, bounded: beyond the scan limit, 400 tooMany.
        r = await app.get(
            f"/scim/v2/{large['id']}/Users",
            params={"filter": 'name.givenName eq "First"'},
            headers={"authorization": f"Bearer {large['scim_token']}"},
        )
        assert r.status_code == 400 and r.json()["scimType"] == "tooMany", r.text
        small_found = await get(small, filter='name.givenName eq "First"')
        assert small_found["totalResults"] == 100  # the template's given name, cloned

        queries = {
            "first page": lambda d, n: get(d, startIndex=1, count=100),
            "middle page": lambda d, n: get(d, startIndex=n // 2, count=100),
            "last page": lambda d, n: get(d, startIndex=max(1, n - 99), count=100),
            "userName eq": lambda d, n: get(d, filter='userName eq "seeded000050@scale.example"'),
        }
        ratios = {}
        for name, query in queries.items():
            at_small = await median_seconds(lambda q=query: q(small, 100))
            at_large = await median_seconds(lambda q=query: q(large, 20_000))
            ratios[name] = (at_large / at_small, at_small, at_large)
        print({k: f"{r:.2f}x ({a * 1000:.1f} ms → {b * 1000:.1f} ms)" for k, (r, a, b) in ratios.items()})
        assert all(r <= RATIO for r, _a, _b in ratios.values()), ratios


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_one_member_of_a_20000_member_group_costs_one_row_and_one_event(stack, receiver):
    scim, _endpoint, route = await scim_directory(stack, receiver)
    ada = (await scim.call("POST", "/Users", 201, json={"schemas": [USER], "userName": "ada@scale.example"})).json()
    template = stored_template(stack.sessions, scim.id, ada["id"])
    seeded = seed_users(stack.sessions, scim.id, template, 20_000)
    big = (await scim.call("POST", "/Groups", 201, json={"schemas": [GROUP], "displayName": "Everyone"})).json()
    small = (await scim.call("POST", "/Groups", 201, json={"schemas": [GROUP], "displayName": "Few"})).json()
    with stack.sessions.begin() as s:
        s.execute(
            table_of(ScimMember).insert(),
            [
                {"directory_id": scim.id, "group_id": big["id"], "member_id": m, "member_type": "User", "display": None}
                for m in seeded
            ],
        )
    await wait_for(lambda: len(route.events()) >= 3, 30, "the user and the groups")

    def members(group_id: str) -> int:
        with stack.sessions() as s:
            return s.scalar(
                select(func.count()).where(ScimMember.directory_id == scim.id, ScimMember.group_id == group_id)
            )

    add = {"op": "add", "path": "members", "value": [{"value": ada["id"]}]}
    remove = {"op": "remove", "path": f'members[value eq "{ada["id"]}"]'}
    timings = {}
    for group in (small, big):
        before = members(group["id"])
        started = time.perf_counter()
        await scim.patch(f"/Groups/{group['id']}", add)
        added_in = time.perf_counter() - started
        assert members(group["id"]) == before + 1
        started = time.perf_counter()
        await scim.patch(f"/Groups/{group['id']}", remove)
        timings[group["displayName"]] = (added_in, time.perf_counter() - started)
        assert members(group["id"]) == before
    events = await wait_for(lambda: len(route.events()) >= 11 and route.events(), 30, "the membership events")
    # Ada's state lists her groups: each change is her update and the membership event, and
    # nothing for the group's 20,000 other members.
    assert summary(events[3:]) == [
        ("user.updated", "ada@scale.example"),
        ("group.user_added", "Few", "ada@scale.example"),
        ("user.updated", "ada@scale.example"),
        ("group.user_removed", "Few", "ada@scale.example"),
        ("user.updated", "ada@scale.example"),
        ("group.user_added", "Everyone", "ada@scale.example"),
        ("user.updated", "ada@scale.example"),
        ("group.user_removed", "Everyone", "ada@scale.example"),
    ]
    # The group's stored body never holds its members, and a GET still lists them all.
    with stack.sessions() as s:
        assert "members" not in s.get(ScimResource, (scim.id, big["id"])).body
    listed = (await scim.call("GET", f"/Groups/{big['id']}", 200)).json()
    assert len(listed["members"]) == 20_000
    lean = (await scim.call("GET", f"/Groups/{big['id']}", 200, params={"excludedAttributes": "members"})).json()
    assert "members" not in lean
    # A user's deletion removes its membership rows, not the group's: the IdP sees it at
    # once, the rows go when deletion protection applies it (dirhook/scim/deprovisions.py).
    await scim.call("DELETE", f"/Users/{seeded[0]}", 204)
    listed = (await scim.call("GET", f"/Groups/{big['id']}", 200)).json()
    assert len(listed["members"]) == 19_999 and seeded[0] not in {m["value"] for m in listed["members"]}
    await wait_for(lambda: members(big["id"]) == 19_999, 60, "the deletion to be applied")
    with stack.sessions() as s:
        assert s.get(ScimResource, (scim.id, big["id"])) is not None
    print({k: f"add {a * 1000:.1f} ms, remove {r * 1000:.1f} ms" for k, (a, r) in timings.items()})
    for kind in (0, 1):
        assert timings["Everyone"][kind] <= RATIO * max(timings["Few"][kind], 0.02), timings


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_bulk_is_bounded_counted_and_stops_on_errors(stack):
    d = await directory(stack)
    base = f"/scim/v2/{d['id']}"
    auth = {"authorization": f"Bearer {d['scim_token']}"}
    bulk = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

    def post(i: int) -> dict:
        return {
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{i}",
            "data": {"schemas": [USER], "userName": f"bulk{i}@scale.example"},
        }

    async def users(app) -> int:
        return (await app.get(f"{base}/Users", params={"count": 0}, headers=auth)).json()["totalResults"]

    async with scim_app(stack, rate=1.0, burst=60) as app:
        config = (await app.get(f"{base}/ServiceProviderConfig", headers=auth)).json()
        assert config["bulk"] == {**config["bulk"], "supported": True, "maxOperations": 100}
        over = await app.post(
            f"{base}/Bulk", json={"schemas": [bulk], "Operations": [post(i) for i in range(101)]}, headers=auth
        )
        assert over.status_code == 413 and over.json()["scimType"] == "tooMany", over.text
        assert "maxOperations (100)" in over.json()["detail"]
        assert await users(app) == 0
        # 60 tokens: 40 operations pass, then 30 more are over the rate limit as a whole.
        ok = await app.post(
            f"{base}/Bulk", json={"schemas": [bulk], "Operations": [post(i) for i in range(40)]}, headers=auth
        )
        assert ok.status_code == 200 and len(ok.json()["Operations"]) == 40, ok.text
        limited = await app.post(
            f"{base}/Bulk", json={"schemas": [bulk], "Operations": [post(i) for i in range(40, 70)]}, headers=auth
        )
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1, limited.text
        assert await users(app) == 40
    async with scim_app(stack) as app:
        # failOnErrors 1: the second operation fails (userName taken), the third never runs.
        stop = await app.post(
            f"{base}/Bulk",
            json={"schemas": [bulk], "failOnErrors": 1, "Operations": [post(100), post(0), post(101)]},
            headers=auth,
        )
        assert stop.status_code == 200, stop.text
        assert [o["status"] for o in stop.json()["Operations"]] == ["201", "409"]
        names = {
            r["userName"]
            for r in (await app.get(f"{base}/Users", params={"count": 200}, headers=auth)).json()["Resources"]
        }
        assert "bulk100@scale.example" in names and "bulk101@scale.example" not in names
