"""Recognizing a user that has not changed before normalizing it. Pure functions.

A full pass reads every user; on a nightly resync nearly all are as stored. Normalizing
each, building its state and comparing it with the stored one (a JSON decode of three
columns a user) was most of such a pass (bench/ldap_full_sync.py). Instead each user is
stored with two digests:

- ``record_hash``: the record as the source gave it (its bytes on the wire, or the record
  with its reference), keyed by the pass's *fingerprint*: everything else that turns a
  record into the user (the attribute mapping, the raw-attributes cap, this module's
  ``VERSION``). Equal record hashes mean equal normalized users.
- ``inputs_hash``: the record hash with what the user's state takes from elsewhere: its
  manager's id and its groups (names, nesting, the roles they grant). Equal inputs hashes
  mean an equal state, so nothing to write and nothing to send.

A record the source names by its hash alone (``SourceEntry.unchanged``) is not even
decoded. A false "changed" costs only the work every user cost before; "unchanged" is
never decided without both digests matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dirhook.jsonenc import canonical_bytes

# Bump when normalize_user or the engine's user_state give something else for the same
# inputs: every stored digest then stops matching, and the next pass computes every user.
VERSION = 1
DIGEST_BYTES = 16


def fingerprint(user_mapping: Mapping[str, Any], raw_attributes_max_bytes: int) -> bytes:
    """The key of a pass's record hashes: what, besides the record, makes the user."""
    return hashlib.blake2b(canonical_bytes([VERSION, user_mapping, raw_attributes_max_bytes]), digest_size=32).digest()


def wire_hash(key: bytes, content: bytes | memoryview) -> str:
    """The record hash of a record as read (e.g. an LDAP entry's DN and attributes, as sent)."""
    return hashlib.blake2b(content, key=key, digest_size=DIGEST_BYTES).hexdigest()


def record_hash(key: bytes, ref: str | None, record: Mapping[str, Any]) -> str:
    """The record hash of a stored-form record (``normalize.source_record``) and its reference."""
    return wire_hash(key, canonical_bytes([ref, record]))


def inputs_hash(record: str, manager_id: str | None, groups_digest: bytes) -> str:
    """The digest of everything a user's state is made of."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    h.update(record.encode())
    h.update(b"\0" + (manager_id or "").encode() + b"\0")
    h.update(groups_digest)
    return h.hexdigest()


def groups_digest(group_part: Mapping[str, Any]) -> bytes:
    """The digest of what a user's state takes from its groups (groups, roles, role)."""
    return hashlib.blake2b(canonical_bytes(group_part), digest_size=DIGEST_BYTES).digest()
