"""Bearer secrets we hand out once and keep only as a digest (API keys, SCIM tokens).

SHA-256, not a password hash: the secrets are 256 random bits, so a slow KDF (bcrypt,
argon2) would add cost and no safety — those slow down guessing low-entropy passwords,
and these cannot be guessed. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str | None) -> bool:
    return stored_digest is not None and hmac.compare_digest(digest(secret), stored_digest)
