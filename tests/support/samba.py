"""A throwaway Samba Active Directory domain controller (Debian `samba`, `samba-ad-dc`,
`samba-ad-provision`): provisioned once per test session into a temporary directory,
listening on 127.0.0.1 (LDAP on 389).

Changes are made with `samba-tool` as an administrator would, against the DC's own
database (`-H …/private/sam.ldb`): over LDAP, samba-tool wants Kerberos, which needs
DNS this test DC does not serve.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REALM, DOMAIN = "EXAMPLE.TEST", "EXAMPLE"
BASE = "DC=example,DC=test"
ADMIN = "Administrator@example.test"
ADMIN_PW = "Passw0rd!Adm1n-dirhook"
EXTRA = """\
\tldap server require strong auth = no
\tpid directory = {dir}/run
\tlog file = {dir}/log.%m
\twinbindd socket directory = {dir}/winbindd
\tntp signd socket directory = {dir}/ntp_signd
\trpc server dynamic port range = 61000-61100
\tserver services = -dns -nbt -wrepl -winbindd -ntp_signd -kcc -dnsupdate -s3fs -smb
"""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class SambaDC:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="dirhook-samba-"))
        self.proc: subprocess.Popen | None = None
        self.url = "ldap://127.0.0.1:389"

    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "smb.conf"

    def start(self, timeout: float = 60) -> None:
        if not shutil.which("samba-tool"):
            raise RuntimeError("samba is not installed (scripts/install-test-services installs it)")
        if _port_open(389):
            raise RuntimeError("port 389 is taken: another LDAP server runs here")
        subprocess.run(
            [
                "samba-tool",
                "domain",
                "provision",
                f"--targetdir={self.dir}",
                f"--realm={REALM}",
                f"--domain={DOMAIN}",
                "--server-role=dc",
                "--dns-backend=SAMBA_INTERNAL",
                "--use-rfc2307",
                f"--adminpass={ADMIN_PW}",
                "--host-ip=127.0.0.1",
                "--host-name=dc1",
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        text = self.conf.read_text().replace("[global]\n", "[global]\n" + EXTRA.format(dir=self.dir), 1)
        self.conf.write_text(text)
        for sub in ("run", "winbindd", "ntp_signd"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            ["samba", "-i", "-M", "single", "-s", str(self.conf)],
            stdout=open(self.dir / "samba.out", "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _port_open(389):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"samba did not start; see {self.dir / 'samba.out'}")
            time.sleep(0.1)

    def tool(self, *args: str) -> str:
        """`samba-tool ARGS` against the DC's database."""
        out = subprocess.run(
            ["samba-tool", *args, "-H", str(self.dir / "private" / "sam.ldb")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"samba-tool {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
