"""Content hashing and change descriptions. Pure functions."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(state: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()


def previous_attributes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields whose value changed, with their old values (``None`` if absent before)."""
    return {key: old.get(key) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}
