"""What a directory's deletion protection holds back, for an operator to decide on: a pass's
held deletions (by dirhook id) and an IdP's held deprovisions (by SCIM id, which is the
user's external id; dirhook/scim/deprovisions.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dirhook.api.schemas import HeldDeletionsOut
from dirhook.db.schema import Directory, Group, HeldDeletion, User
from dirhook.scim.deprovisions import held_pushes

HELD_SAMPLE = 20


def held_listing(d: Directory, s: Session) -> HeldDeletionsOut:
    """The counts and a sample of the first ones (``awaiting_approval`` is the workflow's to say)."""
    held = s.execute(
        select(HeldDeletion.object_type, HeldDeletion.object_id)
        .where(HeldDeletion.directory_id == d.id)
        .order_by(HeldDeletion.id)
    ).all()
    users = [i for kind, i in held if kind == "user"]
    groups = [i for kind, i in held if kind == "group"]
    pushed = held_pushes(s, d.id)
    shown = list(s.scalars(select(User).where(User.id.in_(users[:HELD_SAMPLE]))))
    shown += s.scalars(
        select(User).where(User.directory_id == d.id, User.external_id.in_(pushed[: max(0, HELD_SAMPLE - len(shown))]))
    )
    sample: list[dict[str, Any]] = [{"object": "user", "id": u.id, "username": u.state.get("username")} for u in shown]
    sample += [
        {"object": "group", "id": g.id, "name": g.state.get("name")}
        for g in s.scalars(select(Group).where(Group.id.in_(groups[: max(0, HELD_SAMPLE - len(sample))])))
    ]
    return HeldDeletionsOut(
        directory_id=d.id, awaiting_approval=False, users=len(users) + len(pushed), groups=len(groups), sample=sample
    )
