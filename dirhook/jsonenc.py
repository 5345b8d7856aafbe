"""JSON encoding for the hot paths: event bodies, content hashes, the database's JSON columns.

orjson rather than the standard library: a full pass encodes every user four or five
times (state, hash, stored record, event bodies), and at 100,000 users the standard
encoder was a fifth of the pass (bench/ldap_full_sync.py). Output is UTF-8 without
escaping, as ``json.dumps(..., ensure_ascii=False)`` with compact separators.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS
_CANONICAL = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS


class Encoded:
    """An already-encoded JSON value, embedded as is wherever it appears in a value being
    encoded: a user's payload is encoded once per pass and shared by its user.* and
    group.user_* events."""

    __slots__ = ("raw",)

    def __init__(self, value: Any):
        self.raw = dumps_bytes(value)


def _orjson_default(value: Any) -> Any:
    if isinstance(value, Encoded):
        return orjson.Fragment(value.raw)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Encoded):
        return json.loads(value.raw)
    return str(value)


def _fallback(value: Any, sort_keys: bool) -> bytes:
    # orjson refuses what the standard library takes: integers beyond 64 bits.
    return json.dumps(
        value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode()


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_orjson_default, option=_OPTIONS)
    except TypeError:
        return _fallback(value, False)


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def canonical_bytes(value: Any) -> bytes:
    """Keys sorted at every level: equal values give equal bytes (content hashes)."""
    try:
        return orjson.dumps(value, default=_orjson_default, option=_CANONICAL)
    except TypeError:
        return _fallback(value, True)


def loads(data: str | bytes) -> Any:
    return orjson.loads(data)
