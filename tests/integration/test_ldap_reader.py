"""The full pass's reader process, against the real slapd: it gives what the in-process read
gives, reports the server's refusals as the same errors, and never outlives its pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from dirhook.normalize import normalize_user, source_record
from dirhook.providers.base import SourceAuthError, SourceConfigError
from dirhook.providers.ldap import LdapConfig, LdapSource
from dirhook.providers.ldap.connection import open_connection, paged
from dirhook.providers.ldap.reader import UserReader
from tests.conftest import unique
from tests.support.slapd import ROOT_DN, ROOT_PW, SUFFIX, ldap_tool, people_ldif


@pytest.fixture(scope="module")
def people(slapd):
    ou = unique("reader")
    # 1,200 users: three pages of the reader's 500, the last one short.
    ldap_tool("ldapadd", slapd, people_ldif(ou, 1200, 3))
    return ou


def _config(slapd, ou: str, **overrides) -> LdapConfig:
    return LdapConfig.model_validate(
        {
            "url": slapd.url,
            "bind_dn": ROOT_DN,
            "user_base_dn": f"ou=people,ou={ou},{SUFFIX}",
            "group_base_dn": f"ou=groups,ou={ou},{SUFFIX}",
            **overrides,
        }
    )


def _reader(cfg: LdapConfig, password: str = ROOT_PW, cursor: dict | None = None) -> UserReader:
    source = LdapSource(cfg, password, None)
    attrs = sorted({"*", "entryUUID", "modifyTimestamp", "manager"})
    return UserReader(
        cfg.model_dump(),
        password,
        None,
        cfg.user_base_dn,
        cfg.user_filter,
        attrs,
        cursor if cursor is not None else {},
        30,
    ), source


def test_the_reader_gives_what_the_in_process_read_gives(slapd, people):
    cfg = _config(slapd, people)
    cursor: dict = {}
    reader, source = _reader(cfg, cursor=cursor)
    got = {e.prepared["external_id"]: e for e in reader}
    conn = open_connection(cfg, source._password)
    try:
        expected = {}
        for dn, raw in paged(
            conn, cfg.user_base_dn, cfg.user_filter, ["*", "entryUUID", "modifyTimestamp"], cfg.page_size
        ):
            record = source_record(raw)
            user = normalize_user(source.mapping["user"], record, dn.lower())
            expected[user.external_id] = (dn, user.model_dump(mode="json"), record)
    finally:
        conn.unbind()
    assert len(got) == len(expected) == 1200
    for external_id, (dn, user, record) in expected.items():
        entry = got[external_id]
        assert (entry.ref, entry.prepared, entry.attributes) == (dn, user, record)
    assert "userPassword" not in next(iter(got.values())).attributes  # secrets stay out of the record
    assert cursor["modify_timestamp"].endswith("Z")  # the newest modifyTimestamp came back


@pytest.mark.parametrize("case", ["missing base DN", "wrong password"])
def test_the_servers_refusals_come_back_as_the_same_errors(slapd, people, case):
    if case == "missing base DN":
        reader, _ = _reader(_config(slapd, people, user_base_dn=f"ou=nowhere,{SUFFIX}"))
        with pytest.raises(SourceConfigError, match="does not exist"):
            list(reader)
    else:
        reader, _ = _reader(_config(slapd, people), password="not-the-password")
        with pytest.raises(SourceAuthError, match="invalidCredentials") as failure:
            list(reader)
        assert "not-the-password" not in str(failure.value)
    assert reader.process.returncode is not None  # ended and reaped


def test_a_pass_that_stops_early_stops_its_reader(slapd, people, monkeypatch):
    monkeypatch.setenv("DIRHOOK_ADMIN_TOKEN", "admin-token-the-reader-must-not-get")
    reader, _ = _reader(_config(slapd, people))
    users = iter(reader)
    next(users)
    assert reader.process.poll() is None  # reading on
    # The bind password reached it on stdin: not in its arguments or environment, and
    # dirhook's own settings stay with the worker.
    proc = Path(f"/proc/{reader.process.pid}")
    seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
    assert ROOT_PW.encode() not in seen and b"DIRHOOK_" not in seen and b"admin-token" not in seen
    users.close()  # what the engine's failure does to the stream (GeneratorExit)
    assert reader.process.returncode is not None  # ended and reaped


def test_a_worker_refuses_to_bind_where_the_source_policy_forbids(slapd, people):
    """Checked again when the pass connects, on what the host resolves to then (a directory
    stored before the rule, or a name whose address changed): no bind, no password sent."""
    cfg = _config(slapd, people)
    with pytest.raises(SourceConfigError, match="DIRHOOK_ALLOW_PRIVATE_DIRECTORIES is false"):
        LdapSource(cfg, ROOT_PW, None, allow_private=False).connect()
    metadata = _config(slapd, people, url="ldap://169.254.169.254:389")
    with pytest.raises(SourceConfigError, match="cloud metadata"):
        LdapSource(metadata, ROOT_PW, None).connect()
