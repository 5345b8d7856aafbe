"""Standard Webhooks signatures, through the ``standardwebhooks`` library."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def generate_secret(nbytes: int = 32) -> str:
    """``whsec_`` + base64 of random bytes (the spec allows 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def is_valid_secret(secret: str) -> bool:
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


class Signer:
    """Signs with every active secret of an endpoint (several during a rotation)."""

    def __init__(self, endpoint_secrets: Sequence[str]):
        self._hooks = [Webhook(s) for s in endpoint_secrets]

    def headers(self, msg_id: str, body: str, when: datetime | None = None) -> dict[str, str]:
        when = when or datetime.now(UTC)
        signature = " ".join(h.sign(msg_id, when, body) for h in self._hooks)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
