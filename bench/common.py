"""What the benchmarks share: a migrated database holding the one directory they sync."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

DIRECTORY_ID = "dir_bench"


def bench_directory(db_url: str, provider: str, config: dict[str, Any]) -> sessionmaker[Session]:
    """Migrates ``db_url`` and adds organization ``org_bench`` with directory ``dir_bench``."""
    from dirhook.db.engine import make_engine, make_sessionmaker, migrate
    from dirhook.db.schema import Directory, Organization

    migrate(db_url)
    sessions = make_sessionmaker(make_engine(db_url))
    with sessions.begin() as s:
        s.add(Organization(id="org_bench", name="bench"))
        s.flush()
        s.add(Directory(id=DIRECTORY_ID, organization_id="org_bench", name="bench", provider=provider, config=config))
    return sessions
