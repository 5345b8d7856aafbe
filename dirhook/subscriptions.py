"""Which endpoint gets which event. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from dirhook.models import EVENT_TYPES


def validate_event_type_patterns(patterns: Sequence[str]) -> list[str]:
    """Accept exact types and shell-style wildcards (``user.*``) that match at least one type."""
    out = []
    for pattern in patterns:
        if not any(fnmatchcase(t, pattern) for t in EVENT_TYPES):
            raise ValueError(f"{pattern!r} matches no event type (known: {', '.join(EVENT_TYPES)})")
        out.append(pattern)
    return out


def endpoint_wants(
    event_types: Sequence[str] | None, directory_ids: Sequence[str] | None, event_type: str, directory_id: str
) -> bool:
    if directory_ids and directory_id not in directory_ids:
        return False
    if not event_types:
        return True
    return any(fnmatchcase(event_type, p) for p in event_types)
