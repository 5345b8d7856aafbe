"""The Temporal UI of `dirhook dev`, rendered by headless Chromium: the workflow list filtered
to one directory shows its sync, and the sync's page shows its summary, details and progress,
decrypted through the API's codec endpoint (the payloads in Temporal are encrypted)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import unique
from tests.support.dev_process import dev_env, interrupt, start_dev, wait_http
from tests.support.e2e_helpers import ldap_body
from tests.support.slapd import ROOT_PW, ldap_tool, people_ldif
from tests.support.ui_screenshot import capture
from tests.support.wait import wait_until


def visible_text(path) -> str:
    """What the page says, tags stripped, whitespace collapsed. The UI renders summaries and
    details (markdown) in iframes whose text travels in their ``src``: those are added."""
    page = path.read_text()
    frames = [
        parse_qs(urlsplit(html.unescape(src)).query).get("content", [""])[0]
        for src in re.findall(r'<iframe[^>]* src="([^"]*)"', page)
    ]
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join((html.unescape(re.sub(r"<[^>]+>", " ", text)) + " " + " ".join(frames)).replace("`", "").split())


@pytest.mark.timeout(300)
def test_the_ui_shows_a_directorys_sync_with_its_summary(tmp_path, slapd):
    env, ports = dev_env(tmp_path / "data")
    api, ui = f"http://127.0.0.1:{ports['API_PORT']}", f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}"
    log = tmp_path / "dev.log"
    proc = start_dev(env, log)
    try:
        wait_http(f"{api}/healthz", 120, proc, log)
        wait_http(f"{ui}/", 30, proc, log)
        headers = {"authorization": f"Bearer {(tmp_path / 'data' / 'admin_token').read_text().strip()}"}
        ou = unique("ui-")
        ldap_tool("ldapadd", slapd, people_ldif(ou, 3, 1))
        name = f"Acme {ou}"
        r = httpx.post(
            f"{api}/v1/directories",
            headers=headers,
            timeout=30,
            json={"name": name, "ldap": ldap_body(slapd, ou), "bind_password": ROOT_PW},
        )
        assert r.status_code == 201, r.text
        directory_id = r.json()["id"]
        assert (
            httpx.post(
                f"{api}/v1/directories/{directory_id}/sync", params={"mode": "full"}, headers=headers, timeout=30
            ).status_code
            == 202
        )
        wait_until(
            lambda: (
                httpx.get(f"{api}/v1/directories/{directory_id}/sync", headers=headers, timeout=30).json()[
                    "workflow_status"
                ]
                == "COMPLETED"
            ),
            60,
            "the full pass",
            0.2,
        )

        shots = capture(ui, directory_id, tmp_path / "shots")
        for png in shots.values():
            data = png.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, png  # a rendered page, not a blank one
        listing = visible_text(shots["list"].with_suffix(".html"))
        assert f"dirsync/{directory_id}" in listing and "DirectorySyncWorkflow" in listing
        assert f'DirectoryId = "{directory_id}"' in listing  # the filter the page shows
        detail = visible_text(shots["detail"].with_suffix(".html"))
        assert f"Sync directory {name} (ldap)" in detail  # the summary, decrypted by /codec
        assert f"directory {directory_id} of organization org_default" in detail
        assert "users read: 3" in detail and "groups read: 1" in detail  # current details
    finally:
        if proc.poll() is None:
            interrupt(proc)
