"""What the sync engine needs from a directory source (the errors a source raises live in
dirhook.errors and are re-exported here)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dirhook.errors import SourceAuthError, SourceConfigError, SourceError, SourceUnavailable
from dirhook.normalize import SourceRecord

__all__ = [
    "Changes",
    "DirectorySource",
    "SourceAuthError",
    "SourceConfigError",
    "SourceEntry",
    "SourceError",
    "SourceUnavailable",
]


@dataclass
class SourceEntry:
    ref: str  # where the source points at it (an LDAP DN)
    attributes: SourceRecord
    # Set by sources that normalize users themselves (in another process): the
    # NormalizedUser as JSON, ``attributes`` then being the record as stored.
    prepared: dict[str, Any] | None = None
    # The record's hash as the source computed it (dirhook.sync.unchanged.wire_hash, keyed
    # by the pass's fingerprint): None lets the engine hash the record itself.
    record_hash: str | None = None
    # The source recognized the record by its hash among those the engine said are stored
    # (Changes.known_records) and sends nothing else: ``ref`` and ``attributes`` are empty.
    unchanged: bool = False


@dataclass
class Changes:
    """What a source reports for one pass."""

    full: bool
    # Streams (consumed once, page by page) of changed or, when full, all objects.
    groups: Iterator[SourceEntry]
    users: Iterator[SourceEntry]
    # On incremental passes: callables listing every external id now present, for
    # deletion detection (None when the source reports deletions itself).
    user_ids: Any = None
    group_ids: Any = None
    # Sources told of single membership changes (a SCIM PATCH of a group's members): by
    # group reference, the member references (added, removed). Only those members are
    # recomputed; the group's other members are not read.
    member_changes: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    # Sources that are told of deletions (SCIM DELETE, Graph's @removed, syncrepl's
    # syncIdSet) name them: external ids.
    deleted_user_ids: set[str] = field(default_factory=set)
    deleted_group_ids: set[str] = field(default_factory=set)
    # Deletion protection counts them too, unless each was one person's explicit request
    # (a SCIM DELETE, which the IdP expects done).
    hold_explicit_deletions: bool = True
    # The cursor to store once the state these changes produce is committed.
    next_cursor: dict[str, Any] = field(default_factory=dict)
    # A pass ends with `directory.sync_completed`; a single pushed change (a SCIM
    # request) is not a pass anyone waits for, so it says nothing more.
    announce: bool = True
    # What the source wants the operator to know about this pass (kept among its warnings).
    notes: list[str] = field(default_factory=list)
    # A source that can recognize stored records before decoding them (the LDAP reader
    # process) takes, before ``users`` is iterated, the fingerprint that keys record hashes
    # and the hashes of the stored users; it may then send those as ``unchanged`` entries.
    known_records: Callable[[bytes, Collection[str]], None] | None = None


class DirectorySource(Protocol):
    @property
    def mapping(self) -> Mapping[str, Any]: ...  # the effective attribute mapping, per kind

    def connect(self) -> None: ...
    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes: ...
    def close(self) -> None: ...
