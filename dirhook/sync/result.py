"""What a pass did, and the chunking every phase uses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class PassResult:
    full: bool
    users_read: int = 0
    groups_read: int = 0
    users_written: int = 0  # inserted or updated: what was unchanged is read and compared only
    users_unchanged: int = 0  # of users_read, recognized as stored before being normalized
    events: dict[str, int] = field(default_factory=dict)
    endpoint_ids: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # deletions awaiting approval, by kind

    def absorb(self, other: PassResult) -> PassResult:
        """This result with another step's of the same pass added (a decision applying two
        kinds of held deletions)."""
        for kind, n in other.events.items():
            self.events[kind] = self.events.get(kind, 0) + n
        self.endpoint_ids |= other.endpoint_ids
        self.users_written += other.users_written
        self.users_unchanged += other.users_unchanged
        self.warnings.extend(other.warnings)
        return self

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "full": self.full,
            "users_read": self.users_read,
            "groups_read": self.groups_read,
            "users_written": self.users_written,
            "users_unchanged": self.users_unchanged,
            "events": dict(self.events),
            "events_total": self.events_total,
            "warnings": list(self.warnings),
            "held_deletions": dict(self.held),
        }
