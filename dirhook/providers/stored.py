"""What earlier passes stored of a directory, for sources that compare against it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Group, User


def external_ids(sessions: sessionmaker[Session], directory_id: str, model: type[User] | type[Group]) -> set[str]:
    """The source's ids of the directory's stored users (or groups)."""
    with sessions() as s:
        return set(s.scalars(select(model.external_id).where(model.directory_id == directory_id)))
