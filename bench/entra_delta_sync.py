"""Entra full sync through Graph delta queries: dirhook vs the bare msgraph-sdk paging
through the same delta responses, against the local Graph (tests/support/graph.py).

    python bench/entra_delta_sync.py [--users 50000] [--groups 200]

The Graph server runs in its own process (HTTPS, pages of 999 as `odata.maxpagesize`
asks). (a) The bare SDK: `client.users.delta.get()` then `.with_url(nextLink).get()` to
the deltaLink, and the same for groups with members, into msgraph's typed models — what
an application using the SDK does. (b) dirhook: the Entra source and the sync engine on
SQLite, from the first request to committed users, groups, memberships and events (the
activity's own work, without Temporal). Then a no-change round and a round after 10 changes.
For scale, (c) the floor: the same pages fetched with plain httpx and json.loads.
Issue 7's target: (b) ≤ 1.5 × (a).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def serve(users: int, groups: int, ready: mp.Queue, commands: mp.Queue) -> None:
    from tests.support.graph import GraphServer

    async def main():
        server = GraphServer()
        tenant = server.new_tenant()
        ids = [
            tenant.put_user(
                userPrincipalName=f"user{i:06d}@bench.example",
                mail=f"user{i:06d}@bench.example",
                givenName="User",
                surname=f"Number{i}",
                displayName=f"User {i}",
                jobTitle="Engineer",
                department=f"Dept {i % 40}",
                employeeId=str(100000 + i),
                accountEnabled=True,
            )
            for i in range(users)
        ]
        for g in range(groups):
            gid = tenant.put_group(displayName=f"group{g:04d}", description=f"Group {g}")
            for i in range(g, users, groups):
                tenant.set_member(gid, ids[i])
        await server.start()
        ready.put(
            {
                "ca": str(server.ca_bundle),
                "authority": server.authority,
                "graph": server.graph_url,
                "tenant": tenant.tenant_id,
                "client": tenant.client_id,
                "secret": tenant.client_secret,
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, commands.get)
            if command == "stop":
                break
            if command == "change10":
                for i in range(10):
                    tenant.put_user(id=ids[i], jobTitle="Architect")
            ready.put("done")
        await server.stop()

    asyncio.run(main())


async def bare_sdk(info: dict) -> tuple[float, int, int]:
    import ssl

    import httpx
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    from dirhook.providers.entra_records import GROUP_SELECT, USER_SELECT

    t0 = time.perf_counter()
    credential = ClientSecretCredential(
        info["tenant"], info["client"], info["secret"], authority=info["authority"], connection_verify=info["ca"]
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://127.0.0.1/.default"], allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=info["ca"]), timeout=60)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = info["graph"]
    client = GraphServiceClient(request_adapter=adapter)
    counts = []
    for builder, select in (
        (
            client.users.delta,
            list(USER_SELECT),  # the same properties dirhook asks for
        ),
        (client.groups.delta, list(GROUP_SELECT)),
    ):
        config = RequestConfiguration(query_parameters=builder.DeltaRequestBuilderGetQueryParameters(select=select))
        config.headers.add("Prefer", "odata.maxpagesize=999")
        page = await builder.get(config)
        n = 0
        while True:
            n += len(page.value or [])
            if not page.odata_next_link:
                break
            page = await builder.with_url(page.odata_next_link).get()
        counts.append(n)
    elapsed = time.perf_counter() - t0
    await credential.close()
    await http.aclose()
    return elapsed, counts[0], counts[1]


async def bare_http(info: dict) -> float:
    """The floor: the same pages over one HTTP/1.1 connection, read with json.loads."""
    import json
    import ssl

    import httpx

    t0 = time.perf_counter()
    verify = ssl.create_default_context(cafile=info["ca"])
    async with httpx.AsyncClient(verify=verify, timeout=60) as http:
        token = (
            await http.post(
                f"{info['authority']}/{info['tenant']}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": info["client"],
                    "client_secret": info["secret"],
                    "scope": "https://127.0.0.1/.default",
                },
            )
        ).json()["access_token"]
        headers = {"authorization": f"Bearer {token}", "prefer": "odata.maxpagesize=999"}
        for url in (
            f"{info['graph']}/users/delta()?$select=id,userPrincipalName,mail,otherMails,givenName,surname,"
            "displayName,jobTitle,department,employeeId,accountEnabled,onPremisesExtensionAttributes",
            f"{info['graph']}/groups/delta()?$select=id,displayName,description,members",
        ):
            while url:
                page = json.loads((await http.get(url, headers=headers)).content)
                url = page.get("@odata.nextLink")
    return time.perf_counter() - t0


def dirhook_round(db_url: str, info: dict, cursor: dict | None, full: bool, out: mp.Queue) -> None:
    from dirhook.db.engine import make_engine, make_sessionmaker
    from dirhook.db.schema import Directory
    from dirhook.providers.entra import EntraSource
    from dirhook.providers.entra_config import EntraConfig
    from dirhook.sync import SyncEngine

    sessions = make_sessionmaker(make_engine(db_url))
    t0 = time.perf_counter()
    config = EntraConfig(
        tenant_id=info["tenant"],
        client_id=info["client"],
        authority_host=info["authority"],
        graph_base_url=info["graph"],
    )
    source = EntraSource(
        config, info["secret"], None, sessions, "dir_bench", ca_bundle=info["ca"], allow_private_hosts=True
    )
    source.connect()
    changes = source.changes(cursor, full=full)
    result = SyncEngine(sessions, "dir_bench", source.mapping).run(changes)
    source.close()
    elapsed = time.perf_counter() - t0
    with sessions.begin() as s:
        s.get(Directory, "dir_bench").cursor = dict(changes.next_cursor)
    out.put((elapsed, result.users_read, result.groups_read, result.events_total, dict(changes.next_cursor)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--groups", type=int, default=200)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ready, commands = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=serve, args=(args.users, args.groups, ready, commands), daemon=True)
    server.start()
    info = ready.get(timeout=300)

    from bench.common import bench_directory

    with tempfile.TemporaryDirectory() as scratch:
        db_url = f"sqlite:///{scratch}/bench.db"
        bench_directory(db_url, "entra", {"flavour": "entra"})

        def run_round(cursor, full):
            out = ctx.Queue()
            p = ctx.Process(target=dirhook_round, args=(db_url, info, cursor, full, out))
            p.start()
            result = out.get(timeout=1800)
            p.join()
            return result

        floor = asyncio.run(bare_http(info))
        bare, bare_users, bare_groups = asyncio.run(bare_sdk(info))
        full, users, groups, events, cursor = run_round(None, True)
        quiet = run_round(cursor, False)
        commands.put("change10")
        ready.get(timeout=60)
        changed = run_round(quiet[4], False)
    commands.put("stop")
    server.join(timeout=30)

    print(f"\n{args.users} users, {args.groups} groups, local Graph over HTTPS, pages of 999, SQLite")
    print(
        f"bare msgraph-sdk: page users+groups deltas into models   {bare:8.2f} s   "
        f"({bare_users} users, {bare_groups} groups)"
    )
    print(
        f"dirhook: full round to committed state and events        {full:8.2f} s   "
        f"({users} users, {groups} groups, {events} events)"
    )
    print(f"ratio dirhook / bare SDK                                  {full / bare:8.2f} x   (target <= 1.5 x)")
    print(
        f"floor: the same pages with httpx + json.loads            {floor:8.2f} s   "
        f"(dirhook / floor {full / floor:.1f} x: msgraph's pipeline, normalize, diff, commit)"
    )
    print(f"dirhook: incremental round, nothing changed              {quiet[0]:8.2f} s   ({quiet[3]} events)")
    print(f"dirhook: incremental round after 10 changes              {changed[0]:8.2f} s   ({changed[3]} events)")


if __name__ == "__main__":
    main()
