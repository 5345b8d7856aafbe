"""Google Workspace full sync through the Admin SDK Directory API: dirhook vs the bare
google-api-python-client paging through the same responses, against the local Admin SDK
(tests/support/google_admin.py).

    python bench/google_full_sync.py [--users 50000] [--groups 500]

The Admin SDK runs in its own process (HTTPS with its own CA, the token endpoint checking
the service account's assertion). Each user is in two groups; group0000 also holds 5,000
(25 pages of members). (a) The bare client: a delegated service account (google-auth),
``users.list`` (projection=full, 500 a page), ``groups.list`` and ``members.list`` of every
group to its last page, each page ``execute()``d into dicts, as an application using the
library does. (b) dirhook: the Google source and the sync engine on SQLite, from the first
token request to committed users, groups, memberships and events (the activity's own work,
without Temporal). Then the same full round again with nothing changed.
Issue 18's target: (b) <= 1.5 x (a).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BIG_GROUP = 5000


def serve(users: int, groups: int, ready: mp.Queue, commands: mp.Queue) -> None:
    from tests.support.google_admin import AdminSdkServer
    from tests.support.google_helpers import google_user

    async def main():
        server = AdminSdkServer()
        account = server.new_account()
        account.emit = None  # no channels in this bench: nothing to notify
        ids = [google_user(account, i) for i in range(users)]
        gids = [account.put_group(f"group{g:04d}@bench.example", f"group{g:04d}", f"Group {g}") for g in range(groups)]
        for i, uid in enumerate(ids):
            account.add_member(gids[i % groups], uid)
            account.add_member(gids[(i * 7 + 1) % groups], uid)
        for uid in ids[:BIG_GROUP]:
            account.add_member(gids[0], uid)
        await server.start()
        ready.put(
            {
                "ca": str(server.ca_bundle),
                "api": server.base_url,
                "token_uri": server.token_uri,
                "admin": account.admin,
                "key": account.key_json(server.token_uri),
            }
        )
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, commands.get) != "stop":
            pass
        await server.stop()

    asyncio.run(main())


def bare_client(info: dict, out: mp.Queue) -> None:
    """The library as its documentation shows it, paging everything dirhook reads."""
    import json

    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account
    from googleapiclient import discovery

    from dirhook.providers.google_config import SCOPES

    t0 = time.perf_counter()
    credentials = service_account.Credentials.from_service_account_info(
        json.loads(info["key"]), scopes=list(SCOPES), subject=info["admin"]
    )
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=60, ca_certs=info["ca"]))
    admin = discovery.build(
        "admin",
        "directory_v1",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": info["api"] + "/"},
    )

    def every(make, key):
        token, items = None, []
        while True:
            page = make(token).execute(num_retries=6)
            items += page.get(key) or []
            token = page.get("nextPageToken")
            if not token:
                return items

    users = every(
        lambda t: admin.users().list(
            customer="my_customer", projection="full", maxResults=500, orderBy="email", pageToken=t
        ),
        "users",
    )
    groups = every(lambda t: admin.groups().list(customer="my_customer", maxResults=200, pageToken=t), "groups")
    members = sum(
        len(every(lambda t, g=g: admin.members().list(groupKey=g["id"], maxResults=200, pageToken=t), "members"))
        for g in groups
    )
    out.put((time.perf_counter() - t0, len(users), len(groups), members))


def dirhook_round(db_url: str, info: dict, cursor: dict | None, out: mp.Queue) -> None:
    from dirhook.db.engine import make_engine, make_sessionmaker
    from dirhook.db.schema import Directory
    from dirhook.providers.google import GoogleSource
    from dirhook.providers.google_config import GoogleConfig
    from dirhook.sync import SyncEngine

    sessions = make_sessionmaker(make_engine(db_url))
    t0 = time.perf_counter()
    config = GoogleConfig(admin_email=info["admin"], api_base_url=info["api"], token_uri=info["token_uri"])
    source = GoogleSource(
        config, info["key"], None, sessions, "dir_bench", ca_bundle=info["ca"], allow_private_hosts=True
    )
    source.connect()
    changes = source.changes(cursor, full=True)
    result = SyncEngine(sessions, "dir_bench", source.mapping).run(changes)
    source.close()
    elapsed = time.perf_counter() - t0
    with sessions.begin() as s:
        s.get(Directory, "dir_bench").cursor = dict(changes.next_cursor)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((elapsed, result.users_read, result.groups_read, result.events_total, dict(changes.next_cursor), rss_mb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--groups", type=int, default=500)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ready, commands = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=serve, args=(args.users, args.groups, ready, commands), daemon=True)
    server.start()
    info = ready.get(timeout=600)

    from bench.common import bench_directory

    def in_child(target, *target_args):
        # Each round in a fresh process: no warm imports or caches carried from the other.
        out = ctx.Queue()
        p = ctx.Process(target=target, args=(*target_args, out))
        p.start()
        result = out.get(timeout=3600)
        p.join()
        return result

    with tempfile.TemporaryDirectory() as scratch:
        db_url = f"sqlite:///{scratch}/bench.db"
        bench_directory(db_url, "google", {"admin_email": info["admin"], "flavour": "google"})
        bare, bare_users, bare_groups, bare_members = in_child(bare_client, info)
        full, users, groups, events, cursor, rss = in_child(dirhook_round, db_url, info, None)
        again = in_child(dirhook_round, db_url, info, cursor)
    commands.put("stop")
    server.join(timeout=30)

    print(f"\n{args.users} users, {args.groups} groups, local Admin SDK over HTTPS, SQLite")
    print(
        f"bare google-api-python-client: page users, groups, members   {bare:8.2f} s   "
        f"({bare_users} users, {bare_groups} groups, {bare_members} memberships)"
    )
    print(
        f"dirhook: full round to committed state and events            {full:8.2f} s   "
        f"({users} users, {groups} groups, {events} events; peak RSS {rss:.0f} MB)"
    )
    print(f"ratio dirhook / bare client                                  {full / bare:8.2f} x   (target <= 1.5 x)")
    print(f"dirhook: the full round again, nothing changed               {again[0]:8.2f} s   ({again[3]} events)")


if __name__ == "__main__":
    main()
