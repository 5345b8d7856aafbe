"""Organization API keys: ``dhk_<key id>.<secret>``.

The key ID in the token lets us fetch the one row to check, so a lookup costs one primary
key read whatever the number of keys. Only SHA-256 of the secret is stored: the secret is
256 random bits, so a slow password hash (bcrypt, argon2) would add cost and no safety —
those exist to slow the guessing of low-entropy passwords, and this cannot be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from dirhook.ids import new_id

PREFIX = "dhk_"


def new_api_key() -> tuple[str, str, str]:
    """(key id, the token to hand out once, the digest to store)."""
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}.{secret}", digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX) or "." not in token:
        return None
    key_id, _, secret = token[len(PREFIX):].partition(".")
    if not key_id.startswith("key_") or not secret:
        return None
    return key_id, secret


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
