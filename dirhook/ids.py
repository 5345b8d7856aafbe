"""Prefixed, time-ordered identifiers (``usr_01m8…``).

Hand-written rather than a ULID package: a few lines, and ordering by creation time is
all we need from it (sortable IDs keep indexes and listings in insertion order). Encoded
with the standard library's base32 (C code): a sync pass makes tens of thousands of IDs.
"""

from __future__ import annotations

import base64
import os
import time

# Crockford-style lowercase alphabet, ordered like the values it encodes (sortable).
_TO_SORTABLE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz")


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 characters of milliseconds since the epoch + 16 random ones."""
    ms = time.time_ns() // 1_000_000
    raw = ms.to_bytes(10, "big") + os.urandom(10)  # 80 bits of time (first 50 used), 80 random
    encoded = base64.b32encode(raw).translate(_TO_SORTABLE).decode()  # 32 characters
    return f"{prefix}_{encoded[6:16]}{encoded[16:]}"
