"""How an IdP's deprovision is recorded as it arrives, before deletion protection decides
on it (dirhook/scim/deprovisions.py): the row of a deleted user is hidden, a deactivated
user's projection keeps its previous ``active`` until the deprovision is applied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dirhook.db.scim_tables import ScimDeprovision, ScimResource

PENDING, HELD, APPLIED = "pending", "held", "applied"
DELETE, DEACTIVATE = "delete", "deactivate"


def with_active(body: dict[str, Any], active: Any) -> dict[str, Any]:
    kept = {k: v for k, v in body.items() if k != "active"}
    return kept if active is None else {**kept, "active": active}


def record_deletion(s: Session, row: ScimResource) -> None:
    """The SCIM API stops showing the user and its userName is free; the rows stay."""
    s.add(
        ScimDeprovision(
            directory_id=row.directory_id,
            resource_id=row.id,
            kind=DELETE,
            state=PENDING,
            previous={"unique_key": row.unique_key},
        )
    )
    row.hidden_since, row.unique_key = datetime.now(UTC), None


def record_deactivation(
    s: Session, directory_id: str, before: dict[str, Any], body: dict[str, Any], guard: bool
) -> tuple[dict[str, Any], bool]:
    """A user's stored update: (the body to project, whether a deactivation was just
    recorded pending). A user reactivated before its deactivation was applied voids it."""
    entry = s.scalar(
        select(ScimDeprovision).where(
            ScimDeprovision.directory_id == directory_id,
            ScimDeprovision.resource_id == body["id"],
            ScimDeprovision.kind == DEACTIVATE,
            ScimDeprovision.state.in_((PENDING, HELD)),
        )
    )
    if entry is None:
        if not guard or before.get("active") is False or body.get("active") is not False:
            return body, False
        s.add(
            ScimDeprovision(
                directory_id=directory_id,
                resource_id=body["id"],
                kind=DEACTIVATE,
                state=PENDING,
                previous={"active": before.get("active")},
            )
        )
        return with_active(body, before.get("active")), True
    if body.get("active") is not False:
        s.delete(entry)
        return body, False
    return with_active(body, (entry.previous or {}).get("active")), False
