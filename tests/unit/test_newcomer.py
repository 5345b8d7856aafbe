"""What a newcomer trips over in the first hour (issue 17): each item's assertion that does
not need the running stack. The quickstart itself is driven in tests/integration/test_quickstart.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from dirhook.api.app import create_app
from dirhook.config import Settings
from dirhook.db.engine import migrate
from dirhook.db.schema import SyncRun
from dirhook.receiver import make_receiver_app
from dirhook.services.source_health import source_health
from dirhook.temporal import sync_workflow_id, ui_link

ADMIN = "a" * 32
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + "QWxhZGRpbjpvcGVuIHNlc2FtZTEyMzQ1"


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    return create_app(Settings(data_dir=tmp_path, database_url=url, admin_token=ADMIN))


async def test_docs_and_redoc_load_their_assets_from_dirhook_not_a_cdn(app):
    """Item 13: /docs was a blank page without internet (Swagger UI from a CDN)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dirhook") as api:
        for page in ("/docs", "/redoc"):
            html = (await api.get(page)).text
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert sources, html
            for source in sources:
                assert source.startswith("/"), f"{page} loads {source} from elsewhere"
                r = await api.get(source)
                assert r.status_code == 200 and len(r.content) > 1000, (page, source, r.status_code)


async def test_the_receiver_says_why_it_refused_a_delivery():
    """Item 8: with the wrong --secret it answered 401 and printed nothing."""
    refusals: list[str] = []
    events: list[dict] = []
    app = make_receiver_app(SECRET, lambda e, _h: events.append(e), lambda why, h: refusals.append(why))
    body = '{"type": "user.updated", "data": {}}'
    async with TestClient(TestServer(app)) as client:
        now = datetime.now(UTC)
        wrong = Webhook(OTHER).sign("msg_1", now, body)
        r = await client.post(
            "/",
            data=body,
            headers={"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": wrong},
        )
        assert r.status == 401
        right = Webhook(SECRET).sign("msg_2", now, body)
        r = await client.post(
            "/",
            data=body,
            headers={"webhook-id": "msg_2", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": right},
        )
        assert r.status == 200
    assert len(refusals) == 1 and "signature" in refusals[0]
    assert [e["type"] for e in events] == ["user.updated"]


def test_temporal_ui_links_escape_the_workflow_id():
    """Item 1: `dirsync/dir_…` unescaped made the UI read `dir_…` as a run ID (400)."""
    settings = Settings(temporal_ui_port=8233)
    link = ui_link(settings, sync_workflow_id("dir_01abc"), "3f6c-run")
    assert link == "http://127.0.0.1:8233/namespaces/default/workflows/dirsync%2Fdir_01abc/3f6c-run/history"
    assert ui_link(Settings(temporal_ui_url="https://temporal.example/"), "a/b") == (
        "https://temporal.example/namespaces/default/workflows/a%2Fb"
    )


def run(run_id: int, status: str, error: str | None = None) -> SyncRun:
    return SyncRun(id=run_id, status=status, error=error, mode="incremental", finished_at=datetime.now(UTC))


def test_source_health_is_told_apart_from_recompute_passes():
    """Item 2: a directory whose source was never read showed `succeeded` after a recompute."""
    assert source_health(None, None).state == "never_synced"
    failing = source_health(None, run(3, "failed", "the server at … did not answer as LDAP"))
    assert failing.state == "failing" and "LDAP" in (failing.last_error or "")
    assert source_health(run(4, "succeeded"), run(3, "failed", "x")).state == "healthy"
    again = source_health(run(4, "succeeded"), run(5, "failed", "bind refused"))
    assert again.state == "failing" and again.last_success_at is not None and again.last_error == "bind refused"


@pytest.fixture
def not_ldap():
    """A TCP server answering each connection with the bytes it is given (or nothing)."""
    import socket
    import threading

    servers = []

    def serve(answer: bytes | None) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        servers.append(sock)

        def loop() -> None:
            kept = []
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                kept.append(conn)
                if answer is not None:
                    conn.recv(4096)  # the bind request
                    conn.sendall(answer)

        threading.Thread(target=loop, daemon=True).start()
        return sock.getsockname()[1]

    yield serve
    for sock in servers:
        sock.close()


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (None, "SourceUnavailable", "did not answer the LDAP bind within 1 s"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "SourceUnavailable", "did not answer the LDAP bind within 1 s"),
        (bytes([0x30, 0x06, 0x02, 0x01, 0x01, 0x61, 0x01, 0x0A]), "SourceConfigError", "did not answer as LDAP"),
    ],
    ids=["silent", "http", "malformed-ldap"],
)
def test_a_server_that_is_not_ldap_fails_fast_and_says_so(not_ldap, answer, error, says):
    """Item 4: a non-LDAP port showed "running, 0 users read" for three minutes, or a KeyError."""
    import time

    from dirhook.providers.ldap.config import LdapConfig
    from dirhook.providers.ldap.connection import open_connection

    port = not_ldap(answer)
    config = LdapConfig(
        url=f"ldap://127.0.0.1:{port}", bind_dn="cn=admin,dc=example", user_base_dn="dc=example", timeout_seconds=1
    )
    began = time.monotonic()
    with pytest.raises(Exception) as caught:
        open_connection(config, "secret")
    assert type(caught.value).__name__ == error and says in str(caught.value), caught.value
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert time.monotonic() - began < 5


async def test_validation_errors_read_cleanly_and_urls_are_trimmed(app):
    """Item 12: pydantic's "Value error," prefix, "not this:" for an empty URL, and a URL
    pasted with spaces around it accepted as typed."""
    from dirhook.api.schemas import EndpointIn
    from dirhook.providers.ldap.config import LdapConfig

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dirhook", headers={"authorization": f"Bearer {ADMIN}"}
    ) as api:
        for url, says in (("", "the URL is empty"), ("ftp://x", "not ftp://"), ("example.com/x", "has no scheme")):
            r = await api.post("/v1/endpoints", json={"url": url})
            assert r.status_code == 422, r.text
            [error] = r.json()["detail"]
            assert says in error["msg"] and "Value error" not in error["msg"] and "ctx" not in error, error
    assert EndpointIn.model_validate({"url": " https://hooks.example.com/x \n"}).url == "https://hooks.example.com/x"
    ldap = LdapConfig.model_validate({"url": " ldap://dc1:389 ", "bind_dn": "cn=a", "user_base_dn": "dc=x"})
    assert ldap.url == "ldap://dc1:389"


def test_the_cli_finds_the_project_data_dir_from_anywhere_and_never_makes_a_token(tmp_path, monkeypatch):
    """Item 3: run outside the project root, the CLI made ./.dirhook/admin_token where it
    stood and then said only `error 401`."""
    from pathlib import Path

    from dirhook.cli.common import ApiError, credentials
    from dirhook.config import default_data_dir

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIRHOOK_DATA_DIR", raising=False)
    assert default_data_dir() == root / ".dirhook"
    monkeypatch.setenv("DIRHOOK_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("DIRHOOK_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("DIRHOOK_API_KEY", raising=False)
    with pytest.raises(ApiError) as caught:
        credentials()
    assert str(tmp_path / "empty" / "admin_token") in str(caught.value)
    assert not (tmp_path / "empty").exists() and not (tmp_path / ".dirhook").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "admin_token").write_text("dh_admin_" + "x" * 40 + "\n")
    assert credentials() == ("dh_admin_" + "x" * 40, str(tmp_path / "empty" / "admin_token"))


def test_every_command_says_what_it_does_and_flags_show_no_type():
    """Item 11: `list`, `show`, `delete`, `users`, `deliveries`, `keys` had no help line;
    the prompted password showed as required; flags showed `<bool>`."""
    import click
    import typer
    from typer.testing import CliRunner

    from dirhook.cli import app

    root = typer.main.get_command(app)
    missing = []

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        elif not (command.help or "").strip():
            missing.append(" ".join(path))

    walk(root, [])
    assert missing == []
    runner = CliRunner()
    for args in (["directories", "add-ldap", "--help"], ["directories", "schedule", "--help"]):
        out = runner.invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"}).output
        assert "<bool>" not in out, out
    add_ldap = runner.invoke(app, ["directories", "add-ldap", "--help"], env={"COLUMNS": "200"}).output
    password_line = next(line for line in add_ldap.splitlines() if "--bind-password" in line)
    assert "required" not in password_line and "prompted" in password_line
    for group, command in (("endpoints", "delete"), ("roles", "delete")):
        assert command in typer.main.get_command(app).commands[group].commands  # type: ignore[attr-defined]


def test_install_test_services_takes_a_subset_and_refuses_unknown_ones():
    """Item 10: installing Samba, Chromium and PostgreSQL to get slapd for the demo."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "install-test-services"
    r = subprocess.run([str(script), "ldapp"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown group 'ldapp'" in r.stderr
