"""Who a request acts for, and sessions confined to it.

A scoped session carries the caller's organization in ``session.info``: every lookup
through ``visible`` answers as if another organization's resources did not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from dirhook.db.schema import Organization
from dirhook.services.errors import NotFound

T = TypeVar("T")
DEFAULT_ORGANIZATION_ID = "org_default"


def caller_scope(session: Session) -> str | None:
    """The organization the session is confined to, or None for the admin token."""
    scope: str | None = session.info.get("organization_id")
    return scope


def visible(session: Session, organization_id: str) -> bool:
    scope = caller_scope(session)
    return scope is None or scope == organization_id


@dataclass(frozen=True)
class Scope:
    sessions: sessionmaker[Session]
    organization_id: str | None  # None: the admin token, every organization

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            s.info["organization_id"] = self.organization_id
            yield s

    async def run(self, fn: Callable[[Session], T]) -> T:
        """``fn`` with a scoped session, in a worker thread."""

        def call() -> T:
            with self.session() as s:
                return fn(s)

        return await asyncio.to_thread(call)


def resolve_organization(session: Session, organization_id: str | None) -> Organization:
    """The named organization (NotFound if unknown or not the caller's); when none is named,
    the caller's own, or for the admin the default one, created on first use."""
    organization_id = organization_id or caller_scope(session)
    if organization_id:
        org = session.get(Organization, organization_id)
        if org is None or not visible(session, org.id):
            raise NotFound(f"organization {organization_id} not found")
        return org
    org = session.get(Organization, DEFAULT_ORGANIZATION_ID)
    if org is None:
        org = Organization(id=DEFAULT_ORGANIZATION_ID, name="default")
        session.add(org)
        session.flush()
    return org


def scoped(
    session: Session, query: Select[Any], column: InstrumentedAttribute[str], organization_id: str | None = None
) -> Select[Any]:
    """``query`` narrowed to the named organization (NotFound unless the caller may see it)
    or, for an organization's API key, to its own."""
    if organization_id:
        resolve_organization(session, organization_id)
        return query.where(column == organization_id)
    if scope := caller_scope(session):
        return query.where(column == scope)
    return query
