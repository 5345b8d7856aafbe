"""A connection test: what a pass would find, without reading it (``dirhook directories
add-ldap`` runs it before creating the directory; ``POST /v1/directories/{id}/test`` any time).

A wrong password or a dead host used to be accepted at creation and fail only at the first
pass, minutes later, in the worker's log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Counting stops here: a test answers in seconds, even for a directory of a million entries.
COUNT_CAP = 10_000


@dataclass
class Probe:
    users: int
    groups: int
    capped: bool = False  # a count stopped at COUNT_CAP: "at least"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        more = "+" if self.capped else ""
        return f"{self.users}{more} users and {self.groups}{more} groups would be read"


def count(entries: Iterable[object], cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many ``entries`` yields, stopping at ``cap`` (then True)."""
    seen = 0
    for _entry in entries:
        seen += 1
        if seen >= cap:
            return seen, True
    return seen, False
