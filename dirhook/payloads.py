"""How stored users and groups look to receivers and API clients (``data`` of events)."""

from __future__ import annotations

from typing import Any

from dirhook.db.schema import Directory, Group, User


def user_payload(row: User, directory: Directory) -> dict[str, Any]:
    return {"object": "user", "id": row.id, "directory_id": directory.id,
            "organization_id": directory.organization_id, **row.state,
            "updated_at": row.updated_at.isoformat().replace("+00:00", "Z"), "version": row.version}


def group_payload(row: Group, directory: Directory) -> dict[str, Any]:
    return {"object": "group", "id": row.id, "directory_id": directory.id,
            "organization_id": directory.organization_id, **row.state,
            "updated_at": row.updated_at.isoformat().replace("+00:00", "Z"), "version": row.version}
