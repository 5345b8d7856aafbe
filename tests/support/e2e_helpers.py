"""Steps the end-to-end tests share: connect a fresh LDAP subtree, subscribe, sync, wait."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Stack, unique
from tests.support.receiver import Receiver, Route
from tests.support.slapd import ROOT_DN, ROOT_PW, SUFFIX, Slapd, ldap_tool, people_ldif
from tests.support.wait import wait_for

USER_FIELDS = {
    "object",
    "id",
    "directory_id",
    "organization_id",
    "external_id",
    "username",
    "emails",
    "given_name",
    "family_name",
    "display_name",
    "title",
    "department",
    "manager_id",
    "active",
    "groups",
    "roles",
    "custom_attributes",
    "raw_attributes",
    "updated_at",
    "version",
}
GROUP_FIELDS = {"object", "id", "directory_id", "organization_id", "external_id", "name", "description", "version"}


@dataclass
class Connected:
    ou: str
    directory: dict
    endpoint: dict
    route: Route

    @property
    def id(self) -> str:
        return self.directory["id"]

    def user_dn(self, i: int) -> str:
        return f"uid=user{i:05d},ou=people,ou={self.ou},{SUFFIX}"

    def group_dn(self, g: int) -> str:
        return f"cn=group{g:03d},ou=groups,ou={self.ou},{SUFFIX}"


def ldap_body(slapd: Slapd, ou: str, **overrides) -> dict:
    return {
        "url": slapd.url,
        "bind_dn": ROOT_DN,
        "live": False,  # tests sync when they mean to (test_ldap_live)
        "user_base_dn": f"ou=people,ou={ou},{SUFFIX}",
        "group_base_dn": f"ou=groups,ou={ou},{SUFFIX}",
        **overrides,
    }


async def connect_directory(
    stack: Stack,
    slapd: Slapd,
    receiver: Receiver,
    n_users: int,
    n_groups: int,
    *,
    respond: Callable[[dict, int], int] | None = None,
    retry_schedule: list[float] | None = None,
    password: str = ROOT_PW,
    ldap_overrides: dict | None = None,
) -> Connected:
    ou = unique(f"{stack.name}-")
    await asyncio.to_thread(ldap_tool, "ldapadd", slapd, people_ldif(ou, n_users, n_groups))
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": f"Directory {ou}",
            "ldap": ldap_body(slapd, ou, **(ldap_overrides or {})),
            "bind_password": password,
        },
    )
    assert r.status_code == 201, r.text
    directory = r.json()
    body = {"url": receiver.url(ou), "directory_ids": [directory["id"]]}
    if retry_schedule:
        body["retry_schedule"] = retry_schedule
    r = await stack.api.post("/v1/endpoints", json=body)
    assert r.status_code == 201, r.text
    endpoint = r.json()
    route = receiver.route(ou, endpoint["secret"], respond)
    return Connected(ou, directory, endpoint, route)


async def run_cli(
    stack: Stack, data_dir: Path, *args: str, code: int = 0, timeout: float = 120, env: dict[str, str] | None = None
) -> str:
    """Run ``dirhook ARGS`` as a user would, against the stack's API; returns stdout and stderr
    together after checking the exit code."""
    env = {
        "DIRHOOK_API_URL": stack.api_url,
        "DIRHOOK_ADMIN_TOKEN": stack.settings.resolved_admin_token,
        "DIRHOOK_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
        "PATH": "/usr/bin:/bin",
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dirhook.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == code, out.decode()
    return out.decode()


async def sync(stack: Stack, directory_id: str, mode: str = "incremental", timeout: float = 90) -> dict:
    """Request a pass, wait for its workflow to finish, and return the API's view of it."""
    r = await stack.api.post(f"/v1/directories/{directory_id}/sync", params={"mode": mode})
    assert r.status_code == 202, r.text
    started = r.json()
    handle = stack.client.get_workflow_handle(started["workflow_id"], run_id=started["run_id"])
    await asyncio.wait_for(handle.result(), timeout)
    status = (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()
    return status


async def sync_state(stack: Stack, directory_id: str) -> dict:
    return (await stack.api.get(f"/v1/directories/{directory_id}/sync")).json()


async def awaiting_approval(stack: Stack, directory_id: str) -> dict | None:
    """The sync status while deletions await an operator's decision, else None."""
    s = await sync_state(stack, directory_id)
    return s if s["state"] == "awaiting_approval" else None


async def all_events(stack: Stack, directory_id: str) -> list[dict]:
    events, after = [], None
    while True:
        params = {"directory_id": directory_id, "limit": 1000}
        if after:
            params["after"] = after
        page = (await stack.api.get("/v1/events", params=params)).json()
        events += page["data"]
        after = page["next_cursor"]
        if not page["has_more"]:
            return events


async def wait_delivered(stack: Stack, conn: Connected, timeout: float = 60) -> list[dict]:
    """Wait until every committed event of the directory reached the receiver; returns them (deduplicated)."""
    expected = await all_events(stack, conn.id)
    await wait_for(
        lambda: len(conn.route.events()) >= len(expected), timeout, f"{len(expected)} events at the receiver"
    )
    got = conn.route.events()
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in expected)
    return got


def count_types(events: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        out[e["type"]] = out.get(e["type"], 0) + 1
    return out


# -- events without a directory server: for delivery tests ---------------------------------------
async def scratch_directory(stack: Stack) -> dict:
    """A directory row to hang events on (it is never synced)."""
    r = await stack.api.post(
        "/v1/directories",
        json={
            "name": unique("scratch-"),
            "ldap": {
                "url": "ldap://127.0.0.1:1",
                "bind_dn": ROOT_DN,
                "user_base_dn": f"ou=none,{SUFFIX}",
                "live": False,
            },
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def subscribe(
    stack: Stack,
    receiver: Receiver,
    directory_ids: list[str],
    *,
    respond: Callable[[dict, int], int] | None = None,
    verify: bool = True,
    **settings,
) -> tuple[dict, Route]:
    name = unique("ep-")
    r = await stack.api.post(
        "/v1/endpoints", json={"url": receiver.url(name), "directory_ids": directory_ids, **settings}
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    return endpoint, receiver.route(name, endpoint["secret"], respond, verify=verify)


def _commit(stack: Stack, directory_id: str, n: int, padding: int) -> set[str]:
    from dirhook.db.schema import Directory
    from dirhook.outbox import Outbox

    with stack.sessions.begin() as s:
        outbox = Outbox(s, s.get(Directory, directory_id), stack.settings.max_payload_bytes)
        for i in range(n):
            outbox.emit(
                "user.updated",
                {"object": "user", "id": f"usr_{i}", "version": i + 1, "padding": "x" * padding},
                {"title": None},
            )
        outbox.flush()
        return outbox.endpoint_ids_touched


async def emit(stack: Stack, directory_id: str, n: int, padding: int = 0) -> None:
    """Commit ``n`` events through the outbox, as a sync pass would, and wake their dispatchers."""
    from dirhook import temporal as t

    touched = await asyncio.to_thread(_commit, stack, directory_id, n, padding)
    for endpoint_id in touched:
        await t.wake_dispatcher(stack.client, stack.settings, endpoint_id)


async def listening(handle) -> bool:
    """Whether a directory's live listener runs its activity (the search itself may still be
    starting: tests prove it with a first, untimed change)."""
    try:
        desc = await handle.describe()
    except Exception:
        return False
    return (
        desc.status is not None
        and desc.status.name == "RUNNING"
        and bool(desc.raw_description.pending_activities)
        and desc.raw_description.pending_activities[0].state == 2
    )  # STARTED


def canonical(event: dict) -> str:
    """An event without what is specific to its directory or provider."""
    data = dict(event["data"])
    if event["type"].startswith("group.user_"):
        data = {"group": data["group"]["name"], "user": data["user"]["username"]}
    for key in (
        "id",
        "directory_id",
        "organization_id",
        "external_id",
        "raw_attributes",
        "custom_attributes",
        "updated_at",
        "version",
        "manager_id",
        "name",
        "provider",
        "object_id",
    ):
        if not (event["type"].startswith("group.") and key == "name"):
            data.pop(key, None)
    if "groups" in data:
        data["groups"] = sorted(g["name"] for g in data["groups"])
    return json.dumps({"type": event["type"], "data": data}, sort_keys=True)
