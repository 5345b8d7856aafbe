"""A throwaway OpenLDAP server with 20 people in 3 groups, for the README's quickstart.

    python -m tests.support.demo_ldap [--port 3890] [--users 20] [--groups 3]

Needs Debian's slapd and ldap-utils (``scripts/install-test-services`` installs them).
Runs until Ctrl-C, then removes its files.
"""

from __future__ import annotations

import argparse
import signal
import time

from tests.support.slapd import ROOT_DN, ROOT_PW, SUFFIX, Slapd, people_ldif


def change_title_command(url: str, title: str = "Principal Engineer") -> str:
    """A one-liner to paste: the first demo user's new title, as LDIF on stdin."""
    dn = f"uid=user00000,ou=people,ou=acme,{SUFFIX}"
    ldif = f"dn: {dn}\\nchangetype: modify\\nreplace: title\\ntitle: {title}\\n"
    return f"printf '{ldif}' | ldapmodify -x -H {url} -D {ROOT_DN} -w {ROOT_PW}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3890)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--groups", type=int, default=3)
    args = parser.parse_args()
    server = Slapd()
    server.port, server.url = args.port, f"ldap://127.0.0.1:{args.port}"
    server.prepare()
    server.load(people_ldif("acme", args.users, args.groups))
    server.start()
    print(
        f"OpenLDAP on {server.url} with {args.users} people in {args.groups} groups. Connect it with:\n\n"
        f"  DIRHOOK_LDAP_BIND_PASSWORD={ROOT_PW} dirhook directories add-ldap --name Acme --url {server.url} \\\n"
        f"      --bind-dn {ROOT_DN} \\\n"
        f"      --user-base-dn ou=people,ou=acme,{SUFFIX} --group-base-dn ou=groups,ou=acme,{SUFFIX}\n\n"
        f"Change someone's title (one user.updated arrives, the old title in previous_attributes):\n\n"
        f"  {change_title_command(server.url)}\n\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
