"""Deletion protection for pushes: an IdP's deprovisions (SCIM DELETEs of users and, unless
DIRHOOK_SCIM_GUARD_DEACTIVATIONS=false, deactivations) are accepted at once but reach
receivers through the directory's sync workflow, in settled batches.

A leaked token or a scoping mistake deprovisions a company in seconds, one request at a
time; no single request looks like a mass deletion. So each deprovision is stored as the
IdP asked (a deleted user disappears from the SCIM API, a deactivated one reads inactive)
and recorded *pending*; the workflow waits until the pushes settle (no new one for a few
seconds, a minute at most), then this pass counts them with those applied within the
window. Within the directory's deletion threshold (the same as its passes': 500 or 10 %
by default) they are applied, with their events. Beyond it none is: they are *held* —
nothing sent — and the workflow awaits an operator's decision, as for a pass's held
deletions (API, CLI, Temporal UI). Approval applies them; rejection restores them as they
were (the user visible again, the previous body back), with no event.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import User
from dirhook.db.scim_tables import ScimDeprovision, ScimResource
from dirhook.providers.base import Changes, SourceEntry
from dirhook.scim.index import version_of
from dirhook.scim.pending import APPLIED, DEACTIVATE, DELETE, HELD, PENDING, with_active
from dirhook.scim.records import user_record
from dirhook.scim.rows import ScimRows, stamp
from dirhook.sync.result import PassResult

Run = Callable[[Changes], PassResult]


def limit_of(threshold: tuple[int, float], users: int) -> int:
    count, percent = threshold
    return min(count, math.ceil(users * percent / 100))


def settle(
    sessions: sessionmaker[Session],
    directory_id: str,
    threshold: tuple[int, float],
    window_seconds: float,
    run: Run,
) -> PassResult:
    """The pending deprovisions: applied (through ``run``, the sync engine) or held."""
    now = datetime.now(UTC)
    with sessions.begin() as s:
        mine = ScimDeprovision.directory_id == directory_id
        s.execute(
            delete(ScimDeprovision).where(
                mine,
                ScimDeprovision.state == APPLIED,
                ScimDeprovision.requested_at < now - timedelta(seconds=window_seconds),
            )
        )
        pending = list(
            s.scalars(
                select(ScimDeprovision).where(mine, ScimDeprovision.state == PENDING).order_by(ScimDeprovision.id)
            )
        )
        # Users, not requests: Okta deactivates then deletes, and that is one person gone.
        recent = set(s.scalars(select(ScimDeprovision.resource_id).where(mine, ScimDeprovision.state == APPLIED)))
        asked = {entry.resource_id for entry in pending}
        users = s.scalar(select(func.count()).select_from(User).where(User.directory_id == directory_id)) or 0
        limit = limit_of(threshold, users)
        if pending and len(recent | asked) > limit:
            for entry in pending:
                entry.state = HELD
            held = PassResult(full=False)
            held.held["users"] = len(asked)
            held.warnings.append(
                f"{len(asked)} users deprovisioned by the IdP ({len(recent - asked)} more within the last "
                f"{window_seconds / 60:g} minutes), more than the deletion threshold of {limit} "
                f"(of {users}): held for approval, nothing was sent"
            )
            return held
        ids = [entry.id for entry in pending]
    if not ids:
        return PassResult(full=False)
    return apply(sessions, directory_id, ids, run)


def apply(sessions: sessionmaker[Session], directory_id: str, entry_ids: list[int], run: Run) -> PassResult:
    """Carry the deprovisions out: deactivated users projected as they are stored now,
    deleted ones removed from the SCIM tables and from dirhook, with their events."""
    rows = ScimRows(sessions, directory_id, scan_limit=0)
    now = datetime.now(UTC)
    with sessions.begin() as s:
        entries = list(
            s.scalars(select(ScimDeprovision).where(ScimDeprovision.id.in_(entry_ids)).order_by(ScimDeprovision.id))
        )
        deleted = {e.resource_id for e in entries if e.kind == DELETE}
        deactivated = {e.resource_id for e in entries if e.kind == DEACTIVATE} - deleted
        bodies = {
            r.id: r.body
            for r in s.scalars(
                select(ScimResource).where(
                    ScimResource.directory_id == directory_id, ScimResource.id.in_(deactivated | deleted)
                )
            )
        }
    users = [SourceEntry(ref=i, attributes=user_record(bodies[i])) for i in sorted(deactivated) if i in bodies]
    # A user deactivated then deleted is told both, in that order, as it happened.
    users += [
        SourceEntry(ref=i, attributes=user_record(bodies[i]))
        for i in sorted(deleted)
        if i in bodies and any(e.kind == DEACTIVATE and e.resource_id == i for e in entries)
    ]
    for resource_id in sorted(deleted):
        rows.purge(resource_id)
    result = run(
        Changes(
            full=False,
            groups=iter([]),
            users=iter(users),
            announce=False,
            hold_explicit_deletions=False,
            deleted_user_ids=deleted,
        )
    )
    with sessions.begin() as s:
        for entry in s.scalars(select(ScimDeprovision).where(ScimDeprovision.id.in_(entry_ids))):
            entry.state, entry.applied_at = APPLIED, now
    return result


def held_pushes(s: Session, directory_id: str) -> list[str]:
    """The SCIM ids of the users whose deprovisions are held (each once)."""
    return list(
        dict.fromkeys(
            s.scalars(
                select(ScimDeprovision.resource_id)
                .where(ScimDeprovision.directory_id == directory_id, ScimDeprovision.state == HELD)
                .order_by(ScimDeprovision.id)
            )
        )
    )


def held_ids(sessions: sessionmaker[Session], directory_id: str) -> list[int]:
    with sessions() as s:
        return list(
            s.scalars(
                select(ScimDeprovision.id).where(
                    ScimDeprovision.directory_id == directory_id, ScimDeprovision.state == HELD
                )
            )
        )


def restore(sessions: sessionmaker[Session], directory_id: str) -> int:
    """An operator rejected the held deprovisions: each user back as it was before, no event."""
    now = datetime.now(UTC)
    with sessions.begin() as s:
        entries = list(
            s.scalars(
                select(ScimDeprovision)
                .where(ScimDeprovision.directory_id == directory_id, ScimDeprovision.state == HELD)
                .order_by(ScimDeprovision.id.desc())
            )
        )  # the oldest state last: it wins
        for entry in entries:
            row = s.get(ScimResource, (directory_id, entry.resource_id))
            if row is not None:
                previous: dict[str, Any] = entry.previous or {}
                if entry.kind == DELETE:
                    row.hidden_since = None
                    key = previous.get("unique_key")
                    taken = key is not None and s.scalar(
                        select(ScimResource.id).where(
                            ScimResource.directory_id == directory_id,
                            ScimResource.resource_type == "User",
                            ScimResource.unique_key == key,
                        )
                    )
                    # Re-created meanwhile under the same userName: both stay, the new one keeps it.
                    row.unique_key = None if taken else key
                else:  # the deactivation undone: only ``active`` goes back, later changes stay
                    body = with_active(dict(row.body), previous.get("active"))
                    body["meta"] = {**body.get("meta", {}), "lastModified": stamp(now)}
                    body["meta"]["version"] = row.version = version_of(body)
                    row.body, row.updated_at = body, now
            s.delete(entry)
        return len(entries)
