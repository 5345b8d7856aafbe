"""How stored users and groups look to receivers and API clients (``data`` of events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from dirhook.db.schema import Directory


class Versioned(Protocol):
    """What a payload shows of a stored object: a row, or the engine's snapshot of one."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> dict[str, Any]: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def version(self) -> int: ...


def user_payload(row: Versioned, directory: Directory) -> dict[str, Any]:
    return _payload("user", row, directory)


def group_payload(row: Versioned, directory: Directory) -> dict[str, Any]:
    return _payload("group", row, directory)


def _payload(kind: str, row: Versioned, directory: Directory) -> dict[str, Any]:
    return {
        "object": kind,
        "id": row.id,
        "directory_id": directory.id,
        "organization_id": directory.organization_id,
        **row.state,
        "updated_at": row.updated_at.isoformat().replace("+00:00", "Z"),
        "version": row.version,
    }
