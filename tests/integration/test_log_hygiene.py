"""Runs last: every log line this test session produced — dirhook in this process (at DEBUG),
and the logs of every `dirhook dev` the tests started — holds no endpoint secret, API key,
SCIM token, LDAP password, admin token or encryption key."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ADMIN_TOKEN, SESSION_LOG, TEST_ENCRYPTION_KEY
from tests.support.slapd import ROOT_PW

pytestmark = pytest.mark.last

LEAK_PATTERNS = [
    re.compile(r"whsec_[A-Za-z0-9+/]{16,}"),
    re.compile(r"dhk_key_[a-z0-9]+\.[A-Za-z0-9_\-]{8,}"),
    re.compile(r"dh_admin_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"dhscim_[A-Za-z0-9_\-]{8,}"),
]


def test_logs_hold_no_secret(tmp_path_factory, receiver):
    base = tmp_path_factory.getbasetemp()
    # `dirhook dev`'s console (dev.log here) prints the admin token on purpose; its children's logs must not.
    logs = [base / SESSION_LOG, *base.rglob("logs/*.log")]
    text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
    assert text.count("\n") > 20, "too little was logged for this check to mean anything"

    secrets = {ROOT_PW, ADMIN_TOKEN, TEST_ENCRYPTION_KEY}
    for route in receiver.routes.values():
        secrets |= {route.secret, route.secret.removeprefix("whsec_")}
    for token_file in base.rglob("admin_token"):
        secrets.add(token_file.read_text().strip())
    for keyring in base.rglob("encryption_keys.json"):
        secrets |= set(json.loads(keyring.read_text())["keys"].values())
    leaked = sorted(s for s in secrets if s and s in text)
    assert not leaked, f"secrets in the logs: {[s[:6] + '…' for s in leaked]}"
    for pattern in LEAK_PATTERNS:
        found = pattern.search(text)
        assert found is None, f"a secret-shaped value in the logs: {found.group(0)[:12]}…"
