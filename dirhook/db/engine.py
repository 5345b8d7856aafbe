"""Engines, sessions and migrations for SQLite (embedded) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dirhook.config import Settings
from dirhook.db import secrets
from dirhook.jsonenc import dumps, loads
from dirhook.keyring import Keyring, load_keyring

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalize_url(url: str) -> str:
    # "postgresql://" alone would pick psycopg2, which we do not ship.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, keyring: Keyring | None = None) -> Engine:
    """An engine whose sealed columns (``dirhook.db.secrets``) seal and open with ``keyring``."""
    engine = _create(normalize_url(url))
    secrets.attach(engine, keyring)
    return engine


def open_database(settings: Settings) -> Engine:
    """The deployment's database, with the deployment's keyring."""
    return make_engine(settings.sqlalchemy_url, load_keyring(settings))


def _create(url: str) -> Engine:
    # JSON columns through orjson (dirhook/jsonenc.py): a full pass writes three per user.
    codec = {"json_serializer": dumps, "json_deserializer": loads}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **codec)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the API read while a sync writes; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, **codec)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, keyring: Keyring | None = None) -> dict[str, int]:
    """Bring the database to the newest Alembic revision; with a keyring, seal the secrets
    still stored in clear (rows from before encryption at rest, or before keys were set).
    Returns how many secrets of each table were sealed."""
    from alembic import command

    command.upgrade(_alembic_config(url), "head")
    if keyring is None:
        return {}
    engine = make_engine(url, keyring)
    try:
        return secrets.reencrypt(engine, keyring, only_clear=True)
    finally:
        engine.dispose()


class SchemaBehind(RuntimeError):
    """The database's schema is older than the code (or has none): `dirhook migrate` first."""


@functools.cache
def code_head() -> str | None:
    """The newest revision among this code's migrations (read once: /healthz asks often)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def schema_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's Alembic revision, or None if it has none; the code's newest)."""
    from alembic.runtime.migration import MigrationContext

    head = code_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def check_schema(engine: Engine) -> None:
    """Refuse to serve a database the code's queries do not match: every route would answer
    500 (issue 14, finding 11). Raises SchemaBehind with what to run."""
    current, head = schema_revisions(engine)
    if current != head:
        found = f"is at revision {current}" if current else "has no dirhook schema"
        raise SchemaBehind(
            f"the database {engine.url.render_as_string(hide_password=True)} {found}; this "
            f"dirhook needs revision {head}: run `dirhook migrate` (or `dirhook setup`) first"
        )
