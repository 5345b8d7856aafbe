"""Prefixed, time-ordered identifiers (``usr_01m8…``).

Hand-written rather than a ULID package: a few lines, and ordering by creation time is
all we need from it (sortable IDs keep indexes and listings in insertion order). A sync
pass makes hundreds of thousands of IDs (users, events), so the 26 characters come from a
table of character pairs (10 bits each) rather than ``base64.b32encode``, which is pure
Python and took twice as long.
"""

from __future__ import annotations

import os
import time

# Crockford-style lowercase alphabet, ordered like the values it encodes (sortable).
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_TIME_MASK = (1 << 50) - 1


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 characters of milliseconds since the epoch (50 bits) + 16 random ones (80 bits)."""
    n = ((time.time_ns() // 1_000_000 & _TIME_MASK) << 80) | int.from_bytes(os.urandom(10), "big")
    p = _PAIRS
    return (
        f"{prefix}_{p[n >> 120]}{p[n >> 110 & 1023]}{p[n >> 100 & 1023]}{p[n >> 90 & 1023]}"
        f"{p[n >> 80 & 1023]}{p[n >> 70 & 1023]}{p[n >> 60 & 1023]}{p[n >> 50 & 1023]}{p[n >> 40 & 1023]}"
        f"{p[n >> 30 & 1023]}{p[n >> 20 & 1023]}{p[n >> 10 & 1023]}{p[n & 1023]}"
    )
