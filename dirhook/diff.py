"""Content hashing and change descriptions. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dirhook.jsonenc import canonical_bytes


def content_hash(state: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(state)).hexdigest()


def previous_attributes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields whose value changed, with their old values (``None`` if absent before)."""
    return {key: old.get(key) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}
