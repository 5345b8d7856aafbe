"""Deletion protection: a pass that finds more gone than the directory's threshold deletes
none of them; it stores them as held deletions until an operator approves or rejects."""

from __future__ import annotations

import math

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import HeldDeletion
from dirhook.sync.result import PassResult


class DeletionGuard:
    def __init__(
        self, sessions: sessionmaker[Session], directory_id: str, threshold: tuple[int, float], result: PassResult
    ):
        self.sessions = sessions
        self.directory_id = directory_id
        self.count, self.percent = threshold
        self.result = result

    def limit(self, total: int) -> int:
        return min(self.count, math.ceil(total * self.percent / 100))

    def clear_held(self) -> None:
        """A new pass decides afresh: what it finds missing now is what may be held."""
        with self.sessions.begin() as s:
            s.execute(delete(HeldDeletion).where(HeldDeletion.directory_id == self.directory_id))

    def allow(self, kind: str, ids: set[str], total: int, s: Session | None = None) -> set[str]:
        """The deletions to carry out now: all of them, or none when they pass the threshold
        (then they are stored, awaiting an operator's approval)."""
        limit = self.limit(total)
        if len(ids) <= limit:
            return ids
        rows = [HeldDeletion(directory_id=self.directory_id, object_type=kind, object_id=i) for i in sorted(ids)]
        if s is None:
            with self.sessions.begin() as own:
                own.add_all(rows)
        else:
            s.add_all(rows)
        self.result.held[kind + "s"] = len(ids)
        self.result.warnings.append(
            f"{len(ids)} {kind}s are gone from the source, more than the deletion threshold of {limit} "
            f"(of {total}): deletions held for approval"
        )
        return set()

    def held(self) -> tuple[set[str], set[str]]:
        """The held (user ids, group ids)."""
        with self.sessions() as s:
            rows = s.execute(
                select(HeldDeletion.object_type, HeldDeletion.object_id).where(
                    HeldDeletion.directory_id == self.directory_id
                )
            ).all()
        return {i for kind, i in rows if kind == "user"}, {i for kind, i in rows if kind == "group"}
