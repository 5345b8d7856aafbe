"""The README's quickstart, driven as a newcomer types it (issue 17), in terminals under
pexpect: `scripts/dev`, the demo LDAP server, the CLI with its prompted password, the
receiver, the `ldapmodify` one-liner, the printed Temporal UI link — so the README and the
CLI cannot drift apart again.

The commands are the README's, word for word; what the test adds is plumbing a newcomer's
machine does not need: a scratch data directory and free ports (DIRHOOK_DATA_DIR and the
DIRHOOK_*_PORT settings), so it runs beside other stacks. Each numbered item of the issue
that a terminal can show has its assertion here; the others are in tests/unit/test_newcomer.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.support.dev_process import dev_env
from tests.support.ports import free_port
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists(), reason="needs slapd"),
]


def readme_block(after: str) -> str:
    """The first ```sh block after ``after`` in the README."""
    start = README.index(after)
    block = README[README.index("```sh", start) + len("```sh") : README.index("```", README.index("```sh", start) + 5)]
    return block.strip()


class Terminal:
    """One terminal: bash with the README's `source .venv/bin/activate` done, in ``cwd``."""

    def __init__(self, env: dict[str, str], cwd: Path, logfile: Path, activate: bool = True):
        self.child = pexpect.spawn(
            "bash", ["--norc", "--noprofile"], cwd=str(cwd), env=env, encoding="utf-8", timeout=60, dimensions=(50, 250)
        )
        self.child.logfile_read = logfile.open("a")
        self.child.sendline("PS1='$ '; export PS1")
        self.child.expect_exact("$ ")
        if activate:
            self.run(f"source {ROOT}/.venv/bin/activate")

    def run(self, command: str, timeout: float = 60) -> str:
        """Types the command, waits for the prompt; what it printed."""
        self.child.sendline(command)
        self.child.expect_exact("$ ", timeout=timeout)
        return self.child.before

    def close(self) -> None:
        self.child.sendintr()
        self.child.close(force=True)


@pytest.mark.timeout(600)
def test_the_quickstart_as_the_readme_says(tmp_path):
    env, ports = dev_env(tmp_path / "data")
    env["PATH"] = f"/usr/sbin:{env.get('PATH', '/usr/bin:/bin')}"
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    env["DIRHOOK_API_URL"] = api
    # Rich's colours and highlights would split the text the test reads.
    env["NO_COLOR"], env["TERM"] = "1", "dumb"
    log = tmp_path / "terminals.log"
    cd_root_run = readme_block("1. **Start dirhook**")
    assert cd_root_run == "scripts/dev"

    # 1. scripts/dev (once more later: it must not install again).
    dev = pexpect.spawn(str(ROOT / "scripts" / "dev"), cwd=str(ROOT), env=env, encoding="utf-8", timeout=300)
    dev.logfile_read = log.open("a")
    terminals: list[Terminal] = []
    demo = None
    try:
        dev.expect_exact("dirhook is running", timeout=300)
        dev.expect(r"admin token\s+(\S+)")
        token = dev.match.group(1)

        # Item 7: a second stack on the same data directory names the running one's PID.
        second = pexpect.spawn(str(ROOT / "scripts" / "dev"), cwd=str(ROOT), env=env, encoding="utf-8", timeout=120)
        second.expect(r"another dirhook dev \(PID (\d+)\) is running on")
        second.expect(pexpect.EOF)
        second.close()
        assert second.exitstatus == 1
        # …and another data directory on the same ports lists every port taken, metrics too.
        other = {**env, "DIRHOOK_DATA_DIR": str(tmp_path / "other")}
        busy = pexpect.run(str(ROOT / "scripts" / "dev"), cwd=str(ROOT), env=other, encoding="utf-8", timeout=120)
        for setting in ("DIRHOOK_API_PORT", "DIRHOOK_WORKER_METRICS_PORT", "DIRHOOK_TEMPORAL_SDK_METRICS_PORT"):
            assert f"set {setting}" in busy, busy

        # 2. The demo LDAP server, and the command it prints, typed in another directory
        # than the project's (item 3: the CLI finds the running stack's token by itself).
        ldap_port = free_port()
        demo = pexpect.spawn(
            str(ROOT / ".venv" / "bin" / "python"),
            ["-m", "tests.support.demo_ldap", "--port", str(ldap_port)],
            cwd=str(ROOT),
            env=env,
            encoding="utf-8",
            timeout=60,
        )
        demo.logfile_read = log.open("a")
        demo.expect(
            r"Connect it with:\s+DIRHOOK_LDAP_BIND_PASSWORD=(\S+) (dirhook directories add-ldap .*?)\r?\n\r?\n",
            timeout=60,
        )
        password = demo.match.group(1)
        add_ldap = re.sub(r"\\\r?\n\s*", " ", demo.match.group(2)).strip()
        demo.expect(r"(printf '.*?' \| ldapmodify .*?)\r?\n", timeout=10)
        one_liner = demo.match.group(1)
        # The terminal stands inside dirhook/: the CLI makes no token there (item 3; finding the
        # project root's data directory from anywhere is tests/unit/test_newcomer.py's).
        cli = Terminal(env, ROOT / "dirhook", log)
        terminals.append(cli)
        cli.child.sendline(add_ldap)
        cli.child.expect_exact("Bind password:")  # item 11: prompted, as the help says
        cli.child.sendline(password)
        cli.child.expect(r"connection tested: (\d+) users and (\d+) groups would be read")  # item 5
        assert cli.child.match.groups() == ("20", "3")
        cli.child.expect(r"directory (dir_\w+) created")
        directory_id = cli.child.match.group(1)
        cli.child.expect_exact("$ ")
        assert not (ROOT / "dirhook" / ".dirhook").exists()
        # A wrong password is refused with the server's error, nothing created (item 5).
        out = cli.run(f"DIRHOOK_LDAP_BIND_PASSWORD=wrong {add_ldap.replace('Acme', 'Wrong')}")
        assert "invalidCredentials" in out and "nothing was created" in out, out
        # A token that is not the stack's: the CLI says which one it used and from where (item 3).
        out = cli.run("DIRHOOK_ADMIN_TOKEN=dh_admin_not-the-token-of-this-stack-1234 dirhook directories list")
        assert "401" in out and "DIRHOOK_ADMIN_TOKEN" in out, out

        # 3. The endpoint and the receiver, in a third terminal.
        receiver_port = free_port()
        out = cli.run(f"dirhook endpoints add http://127.0.0.1:{receiver_port}/webhooks")
        secret = re.search(r"(whsec_\S+)", out).group(1)
        receiver = Terminal(env, ROOT, log)
        terminals.append(receiver)
        receiver.child.sendline(f"dirhook receiver --port {receiver_port} --secret {secret}")
        receiver.child.expect_exact("receiving on")

        # 4. The first full pass, its progress and its Temporal UI link (item 1).
        out = cli.run(f"dirhook sync {directory_id} --full", timeout=120)
        assert "sync completed" in out, out
        link = re.search(r"(http://127\.0\.0\.1:\d+/namespaces/\S+)", out).group(1)
        assert "dirsync%2F" in link
        assert httpx.get(link, timeout=10).status_code == 200
        workflow, run_id = link.split("/workflows/", 1)[1].split("/")[:2]
        # What the page itself asks the UI server for (unescaped, it answers 404: no workflow `dirsync`).
        ui_api = (
            link.split("/namespaces/")[0] + f"/api/v1/namespaces/default/workflows/{workflow}?execution.runId={run_id}"
        )
        assert httpx.get(ui_api, timeout=10).status_code == 200, ui_api
        for _ in range(20):
            receiver.child.expect(r"user\.created", timeout=60)
        receiver.child.expect(r"directory\.sync_completed", timeout=60)  # the first pass's end

        # The ldapmodify one-liner demo_ldap printed: one user.updated with the old title (item 9).
        shell = Terminal(env, ROOT, log, activate=False)
        terminals.append(shell)
        shell.run(one_liner)
        receiver.child.expect(r"user\.updated\s+user00000", timeout=30)
        receiver.child.expect(r'previous: \{.*"title": "Engineer"', timeout=10)
        receiver.child.expect(r"directory\.sync_completed", timeout=30)  # item 16: the README says so now

        # The README's role example maps the members it names (item 16).
        role_cmd = re.search(r"`(dirhook directories map-role dir_… admin --group-name \"group000\")`", README).group(1)
        cli.run("dirhook roles add admin --priority 30")
        out = cli.run(role_cmd.replace("dir_…", directory_id))
        assert "-> admin" in out, out
        headers = {"authorization": f"Bearer {token}"}

        def admins() -> int:
            users = httpx.get(f"{api}/v1/directories/{directory_id}/users", headers=headers, timeout=10).json()["data"]
            return sum(1 for u in users if any(r["slug"] == "admin" for r in u["roles"]))

        wait_until(lambda: admins() == 7, 30, "the 7 members of group000 to be admins")
        out = cli.run("dirhook roles delete admin")  # by slug (item 11)
        assert "deleted" in out, out

        # A stuck pass (a port that takes connections and never answers): Ctrl-C says the
        # pass goes on, --cancel stops it (item 6); `directories show` says the source never
        # synced (item 2) and is failing once a pass failed.
        silent = pexpect.spawn(
            str(ROOT / ".venv" / "bin" / "python"),
            [
                "-c",
                "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);time.sleep(600)",
            ],
            encoding="utf-8",
        )
        silent.expect(r"(\d+)")
        stuck_url = f"ldap://127.0.0.1:{silent.match.group(1)}"
        out = cli.run(
            f"{add_ldap.replace('Acme', 'Stuck').replace(f'ldap://127.0.0.1:{ldap_port}', stuck_url)} --no-test".replace(
                "dirhook", f"DIRHOOK_LDAP_BIND_PASSWORD={password} dirhook", 1
            )
        )
        stuck_id = re.search(r"directory (dir_\w+) created", out).group(1)
        out = cli.run(f"dirhook directories show {stuck_id}")
        assert "source: never synced" in out, out
        cli.child.sendline(f"dirhook sync {stuck_id} --full")
        cli.child.expect(r"workflow dirsync/")
        cli.child.sendintr()  # while it waits for the pass
        cli.child.expect_exact("the pass goes on in Temporal")
        cli.child.expect_exact(f"dirhook sync {stuck_id} --cancel")
        cli.child.expect_exact("$ ")
        out = cli.run(f"dirhook sync {stuck_id} --cancel", timeout=90)
        assert "CANCELED" in out, out
        silent.close(force=True)

        # Item 13: /docs and /redoc load nothing from elsewhere.
        for page in ("/docs", "/redoc"):
            html = httpx.get(f"{api}{page}", timeout=10).text
            assert all(src.startswith("/") for src in re.findall(r'(?:src|href)="([^"]+)"', html)), html

        # Ctrl-C stops everything; scripts/dev again comes up without installing (item 14).
        dev.sendintr()
        dev.expect_exact("stopping dirhook")
        dev.expect(pexpect.EOF, timeout=60)
        began = time.monotonic()
        dev = pexpect.spawn(str(ROOT / "scripts" / "dev"), cwd=str(ROOT), env=env, encoding="utf-8", timeout=120)
        dev.logfile_read = log.open("a")
        index = dev.expect_exact(["installing", "setting up .venv", "dirhook is running"], timeout=120)
        assert index == 2, "scripts/dev installed again though nothing changed"
        print(f"second start: {time.monotonic() - began:.1f} s to 'dirhook is running'")
    finally:
        for t in terminals:
            t.close()
        if demo is not None:  # its slapd stops with it: let it clean up before closing
            demo.sendintr()
            demo.expect(pexpect.EOF, timeout=30)
            demo.close()
        if dev.isalive():
            dev.sendintr()
            dev.expect(pexpect.EOF, timeout=60)

    # Item 15: the worker's log is one JSON object per line, the SDK's own warnings included.
    for line in (tmp_path / "data" / "logs" / "worker.log").read_text().splitlines():
        if line.strip():
            assert isinstance(json.loads(line), dict), line
    assert "\x1b[" not in (tmp_path / "data" / "logs" / "worker.log").read_text()
    assert os.environ.get("DIRHOOK_DATA_DIR") != str(tmp_path / "data")
