"""Full LDAP sync: dirhook vs a bare ldap3 paged read vs ldapsearch, on one throwaway slapd.

    python bench/ldap_full_sync.py [--users 10000] [--groups 500] [--database-url URL]

Times (a) dirhook's full pass to committed events (SyncEngine on the database, without
Temporal: the activity's own work), (b) ldap3 paged search of the same entries and
attributes, (c) ``ldapsearch``; then the full pass again with nothing changed (a nightly
resync, or an attempt taking over from a killed one), a no-change incremental pass and one
after 10 changes.
Each dirhook pass runs in a child process, so its peak RSS is its own (a full pass's own
reader process, which reads and normalizes the users, is reported apart).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.slapd import ROOT_DN, ROOT_PW, SUFFIX, Slapd, ldap_tool, people_ldif

OU = "bench"


def ldap_config(url: str) -> dict:
    return {
        "url": url,
        "bind_dn": ROOT_DN,
        "user_base_dn": f"ou=people,ou={OU},{SUFFIX}",
        "group_base_dn": f"ou=groups,ou={OU},{SUFFIX}",
    }


def dirhook_pass(db_url: str, ldap_url: str, full: bool, out: mp.Queue) -> None:
    from dirhook.db.engine import make_engine, make_sessionmaker
    from dirhook.db.schema import Directory
    from dirhook.providers.ldap import LdapConfig, LdapSource
    from dirhook.sync import SyncEngine

    sessions = make_sessionmaker(make_engine(db_url))
    with sessions() as s:
        cursor = s.get(Directory, "dir_bench").cursor
    t0 = time.perf_counter()
    source = LdapSource(LdapConfig.model_validate(ldap_config(ldap_url)), ROOT_PW, None, timestamp_overlap_seconds=0)
    source.connect()
    result = SyncEngine(sessions, "dir_bench", source.mapping).run(source.changes(cursor, full=full))
    source.close()
    elapsed = time.perf_counter() - t0
    out.put(
        {
            "seconds": elapsed,
            "events": result.events_total,
            "users": result.users_read,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # a full pass reads users in a child process (dirhook/providers/ldap/reader.py)
            "reader_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
    )


def run_in_child(*args) -> dict:
    q: mp.Queue = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=dirhook_pass, args=(*args, q))
    p.start()
    result = q.get(timeout=3600)
    p.join()
    return result


def bare_ldap3(url: str, attrs_user: list[str], attrs_group: list[str]) -> tuple[float, int]:
    import ldap3

    t0 = time.perf_counter()
    host, port = url.rsplit(":", 1)
    conn = ldap3.Connection(
        ldap3.Server(host.split("//")[1], port=int(port), get_info=ldap3.NONE), ROOT_DN, ROOT_PW, auto_bind=True
    )
    n = 0
    for base, flt, attrs in (
        (f"ou=groups,ou={OU},{SUFFIX}", "(objectClass=groupOfNames)", attrs_group),
        (f"ou=people,ou={OU},{SUFFIX}", "(objectClass=inetOrgPerson)", attrs_user),
    ):
        for entry in conn.extend.standard.paged_search(
            base, flt, attributes=attrs, paged_size=500, generator=True, dereference_aliases=ldap3.DEREF_NEVER
        ):
            if entry.get("type") == "searchResEntry":
                n += 1
    conn.unbind()
    return time.perf_counter() - t0, n


def ldapsearch(url: str) -> float:
    t0 = time.perf_counter()
    for base in (f"ou=groups,ou={OU},{SUFFIX}", f"ou=people,ou={OU},{SUFFIX}"):
        subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-H",
                url,
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
                "-b",
                base,
                "-E",
                "pr=500/noprompt",
                "*",
                "entryUUID",
                "modifyTimestamp",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    args = parser.parse_args()

    from bench.common import bench_directory
    from dirhook.normalize import effective_mapping, requested_attributes

    work = Path(tempfile.mkdtemp(prefix="dirhook-bench-"))
    server = Slapd(work / "slapd")
    server.prepare()
    t0 = time.perf_counter()
    server.load(people_ldif(OU, args.users, args.groups))
    load_s = time.perf_counter() - t0
    server.start()
    try:
        db_url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        bench_directory(db_url, "ldap", {})

        mapping = effective_mapping("openldap", None)
        attrs_user = requested_attributes(mapping["user"], ["modifyTimestamp"])
        attrs_group = requested_attributes(mapping["group"], ["modifyTimestamp"])
        bare_s, entries = bare_ldap3(server.url, attrs_user, attrs_group)
        search_s = ldapsearch(server.url)
        full = run_in_child(db_url, server.url, True)
        # What a full pass costs when everything is committed already: a nightly resync, or
        # an attempt taking over from a killed one (it reads again; nothing is written).
        again = run_in_child(db_url, server.url, True)
        nochange = run_in_child(db_url, server.url, False)
        time.sleep(1.1)  # modifyTimestamp has one-second resolution
        changes = "".join(
            f"dn: uid=user{i:05d},ou=people,ou={OU},{SUFFIX}\nchangetype: modify\nreplace: title\ntitle: Bench {i}\n\n"
            for i in range(0, args.users, max(1, args.users // 10))
        )
        ldap_tool("ldapmodify", server, changes)
        ten = run_in_child(db_url, server.url, False)

        print(
            f"\nLDAP full sync benchmark: {args.users} users, {args.groups} groups "
            f"({entries} entries; slapadd load {load_s:.1f}s; database {db_url.split(':')[0]})\n"
        )
        rows = [
            (
                "dirhook full pass (read+normalize+diff+commit)",
                full["seconds"],
                f"{full['events']} events, "
                f"peak RSS {full['peak_rss_mb']:.0f} MB (its reader process: {full['reader_peak_rss_mb']:.0f} MB)",
            ),
            ("dirhook full pass again, nothing changed", again["seconds"], f"{again['events']} events"),
            ("bare ldap3 paged read, same attributes", bare_s, f"{entries} entries"),
            ("ldapsearch, same entries", search_s, ""),
            ("dirhook no-change incremental pass", nochange["seconds"], f"{nochange['events']} events"),
            ("dirhook pass after 10 changes", ten["seconds"], f"{ten['events']} events"),
        ]
        for name, secs, note in rows:
            print(f"  {name:<50} {secs:8.2f} s   {note}")
        print(f"\n  ratio full pass / bare ldap3 read: {full['seconds'] / bare_s:.2f}x")
        print(f"  ratio full pass / ldapsearch:      {full['seconds'] / search_s:.2f}x")
        print(
            json.dumps(
                {
                    "users": args.users,
                    "groups": args.groups,
                    "full_s": full["seconds"],
                    "bare_ldap3_s": bare_s,
                    "ldapsearch_s": search_s,
                    "full_again_s": again["seconds"],
                    "full_again_events": again["events"],
                    "nochange_s": nochange["seconds"],
                    "nochange_events": nochange["events"],
                    "ten_changes_s": ten["seconds"],
                    "ten_changes_events": ten["events"],
                    "peak_rss_mb": full["peak_rss_mb"],
                    "reader_peak_rss_mb": full["reader_peak_rss_mb"],
                }
            )
        )
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
