"""Security (issue 14, finding 3): bind passwords, client secrets and signing secrets are
sealed in the database with the keyring; a dump alone reveals none of them; keys rotate;
rows stored in clear before are sealed by `dirhook migrate`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from dirhook.api.app import create_app
from dirhook.cli import app as cli
from dirhook.config import Settings
from dirhook.db.engine import make_engine, make_sessionmaker, migrate
from dirhook.db.schema import Directory, Endpoint, EndpointSecret, Organization
from dirhook.db.secrets import SecretsLocked, check_readable, reencrypt
from dirhook.keyring import Keyring, new_key

K1, K2 = new_key(), new_key()
BIND_PASSWORD = "bind-password-of-the-directory"
SIGNING = "whsec_c2lnbmluZy1zZWNyZXQtb2YtdGhlLWVuZHBvaW50"
OLD_SIGNING = "whsec_b2xkLXNpZ25pbmctc2VjcmV0LXN0aWxsLXNlbnQ="
SECRETS = (BIND_PASSWORD, SIGNING, OLD_SIGNING)


def ring(active: str = "k1", **keys: str) -> Keyring:
    return Keyring.parse(keys or {"k1": K1}, active)


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    return url


def store(url: str, keyring: Keyring | None) -> None:
    engine = make_engine(url, keyring)
    with make_sessionmaker(engine).begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.flush()
        s.add(
            Directory(id="dir_1", organization_id="org_1", name="d", provider="ldap", config={}, secret=BIND_PASSWORD)
        )
        s.add(Endpoint(id="ep_1", organization_id="org_1", url="https://r.example/h", secret=SIGNING))
        s.flush()
        s.add(EndpointSecret(endpoint_id="ep_1", secret=OLD_SIGNING, expires_at=datetime.now(UTC) + timedelta(days=1)))
    engine.dispose()


def raw_values(url: str) -> list[str]:
    engine = make_engine(url)  # no keyring: what the database holds
    with engine.connect() as c:
        out = [
            *c.scalars(text("select secret from directories")),
            *c.scalars(text("select secret from endpoints")),
            *c.scalars(text("select secret from endpoint_secrets")),
        ]
    engine.dispose()
    return out


def dump(url: str) -> str:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return "\n".join(db.iterdump())


def read(url: str, keyring: Keyring | None) -> tuple[str | None, str, str]:
    engine = make_engine(url, keyring)
    try:
        with make_sessionmaker(engine)() as s:
            d, e, old = s.get(Directory, "dir_1"), s.get(Endpoint, "ep_1"), s.query(EndpointSecret).one()
            assert d is not None and e is not None
            return d.secret, e.secret, old.secret
    finally:
        engine.dispose()


def test_a_database_dump_reveals_no_secret_and_the_keyring_opens_them(url):
    store(url, ring())
    everything = dump(url)
    for secret in SECRETS:
        assert secret not in everything
    assert all(v.startswith("dhenc1:k1:") for v in raw_values(url))
    assert read(url, ring()) == SECRETS
    # The same secret sealed twice differs (a fresh nonce): equal secrets do not show.
    assert len(set(raw_values(url))) == 3


def test_a_sealed_value_moved_to_another_column_does_not_open(url):
    store(url, ring())
    engine = make_engine(url)
    with engine.begin() as c:  # an attacker with write access wants the signing secret sent to "LDAP"
        c.execute(text("update directories set secret = (select secret from endpoints)"))
    engine.dispose()
    with pytest.raises(SecretsLocked, match=r"directories\.secret"):
        read(url, ring())


def test_without_the_key_nothing_opens_and_the_api_refuses_to_start(url, tmp_path):
    store(url, ring())
    with pytest.raises(SecretsLocked, match="no keyring is configured"):
        read(url, None)
    with pytest.raises(SecretsLocked, match="'k1', which is not configured"):
        read(url, ring("k9", k9=K2))
    with pytest.raises(SecretsLocked, match="DIRHOOK_ENCRYPTION_KEYS"):
        create_app(Settings(data_dir=tmp_path / "elsewhere", database_url=url, admin_token="a" * 32))


def test_rotation_reseals_every_value_under_the_new_key(url):
    store(url, ring())
    both = ring("k2", k1=K1, k2=K2)
    assert read(url, both) == SECRETS  # the old key still opens what it sealed
    assert reencrypt(make_engine(url, both), both) == {"directories": 1, "endpoints": 1, "endpoint_secrets": 1}
    assert all(v.startswith("dhenc1:k2:") for v in raw_values(url))
    assert reencrypt(make_engine(url, both), both) == {"directories": 0, "endpoints": 0, "endpoint_secrets": 0}
    only_new = ring("k2", k2=K2)
    assert read(url, only_new) == SECRETS  # the old key can go
    assert check_readable(make_engine(url, only_new)) == 0


def test_migrate_seals_the_rows_stored_in_clear(url):
    store(url, None)  # as every deployment before this revision did
    assert sorted(raw_values(url)) == sorted(SECRETS)
    assert migrate(url, ring()) == {"directories": 1, "endpoints": 1, "endpoint_secrets": 1}
    assert all(v.startswith("dhenc1:k1:") for v in raw_values(url))
    assert read(url, ring()) == SECRETS
    assert migrate(url, ring()) == {"directories": 0, "endpoints": 0, "endpoint_secrets": 0}


def test_the_reencrypt_command(url, tmp_path, monkeypatch):
    store(url, ring())
    monkeypatch.setenv("DIRHOOK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIRHOOK_DATABASE_URL", url)
    monkeypatch.setenv("DIRHOOK_ENCRYPTION_KEYS", f'{{"k1": "{K1}", "k2": "{K2}"}}')
    monkeypatch.setenv("DIRHOOK_ENCRYPTION_KEY_ID", "k2")
    out = CliRunner().invoke(cli, ["secrets", "reencrypt"])
    assert out.exit_code == 0, out.output
    assert "3 secrets sealed under key 'k2'" in out.output
    for secret in SECRETS:
        assert secret not in out.output
    assert all(v.startswith("dhenc1:k2:") for v in raw_values(url))
    monkeypatch.setenv("DIRHOOK_ENCRYPTION_KEYS", f'{{"k3": "{new_key()}"}}')
    monkeypatch.delenv("DIRHOOK_ENCRYPTION_KEY_ID")
    locked = CliRunner().invoke(cli, ["secrets", "reencrypt"])
    assert locked.exit_code == 2 and "'k2', which is not configured" in locked.output
    monkeypatch.delenv("DIRHOOK_ENCRYPTION_KEYS")
    none = CliRunner().invoke(cli, ["secrets", "reencrypt"])
    assert none.exit_code == 2 and "no keyring" in none.output
