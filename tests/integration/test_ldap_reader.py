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


def test_the_reader_sends_stored_records_by_their_hash_alone(slapd, people):
    key = b"k" * 32
    reader, _ = _reader(_config(slapd, people))
    reader.known_records(key, ())
    first = list(reader)
    assert len(first) == 1200 and all(e.record_hash and not e.unchanged for e in first)
    known = {e.record_hash for e in first[::2]}
    reader, _ = _reader(_config(slapd, people))
    reader.known_records(key, known)
    again = list(reader)
    unchanged = [e for e in again if e.unchanged]
    assert {e.record_hash for e in unchanged} == known
    assert all(e.ref == "" and e.attributes == {} and e.prepared is None for e in unchanged)
    # The others come whole, with the same hash as before.
    assert {(e.ref, e.record_hash) for e in again if not e.unchanged} == {(e.ref, e.record_hash) for e in first[1::2]}
    # Another fingerprint (a mapping change) matches nothing.
    reader, _ = _reader(_config(slapd, people))
    reader.known_records(b"j" * 32, known)
    assert not any(e.unchanged for e in reader)


def test_a_full_pass_recognizes_unchanged_entries_and_still_sees_every_change(slapd, tmp_path):
    from dirhook.db.engine import make_engine, make_sessionmaker, migrate
    from dirhook.db.schema import Directory, Organization
    from dirhook.sync import SyncEngine

    ou = unique("unchanged")
    ldap_tool("ldapadd", slapd, people_ldif(ou, 600, 3))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.flush()
        s.add(Directory(id="dir_1", organization_id="org_1", name="d", provider="ldap", config={}))

    def full_pass():
        source = LdapSource(_config(slapd, ou), ROOT_PW, None)
        source.connect()
        try:
            return SyncEngine(sessions, "dir_1", source.mapping).run(source.changes({}, full=True))
        finally:
            source.close()

    first = full_pass()
    assert (first.users_read, first.users_unchanged, first.events["user.created"]) == (600, 0, 600)
    again = full_pass()
    assert (again.users_read, again.users_unchanged, again.users_written, again.events) == (600, 600, 0, {})
    base = f"ou={ou},{SUFFIX}"
    ldap_tool(
        "ldapmodify",
        slapd,
        f"dn: uid=user00007,ou=people,{base}\nchangetype: modify\nreplace: title\ntitle: Chief\n\n"
        f"dn: cn=group002,ou=groups,{base}\nchangetype: modify\nadd: member\nmember: uid=user00009,ou=people,{base}\n",
    )
    third = full_pass()
    assert third.users_unchanged == 598  # user00007's entry changed, user00009's groups did
    assert third.events == {"user.updated": 2, "group.user_added": 1, "directory.sync_completed": 1}
