"""Organization API keys: ``dhk_<key id>.<secret>``.

The key ID in the token lets us fetch the one row to check, so a lookup costs one primary
key read whatever the number of keys. Only a digest of the secret is kept (dirhook/tokens.py).
"""

from __future__ import annotations

from dirhook.ids import new_id
from dirhook.tokens import digest, matches, new_secret

PREFIX = "dhk_"
__all__ = ["PREFIX", "matches", "new_api_key", "parse"]


def new_api_key() -> tuple[str, str, str]:
    """(key id, the token to hand out once, the digest to store)."""
    key_id = new_id("key")
    secret = new_secret()
    return key_id, f"{PREFIX}{key_id}.{secret}", digest(secret)


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX) or "." not in token:
        return None
    key_id, _, secret = token[len(PREFIX) :].partition(".")
    if not key_id.startswith("key_") or not secret:
        return None
    return key_id, secret
