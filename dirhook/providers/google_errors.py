"""How Google's refusals become dirhook's errors (pure: Google's libraries raise, this says
what the operator reads and whether retrying can help).

429, 5xx and 403 ``rateLimitExceeded``/``userRateLimitExceeded`` are retried by the client
library itself (``execute(num_retries=…)``) before anything reaches here; what still fails
is SourceUnavailable, retried by Temporal. 401 and the other 403s (no delegation, a scope
not granted, the admin not an admin) are SourceAuthError, with Google's words and the fix.
"""

from __future__ import annotations

import json

from dirhook.errors import SourceAuthError, SourceConfigError, SourceError, SourceUnavailable
from dirhook.providers.google_config import SCOPES

# 403 reasons that are quotas (retried by the library), not a refusal.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})

DELEGATION_FIX = (
    "in the Admin console (Security > Access and data control > API controls > Domain-wide "
    "delegation), give the service account's client ID {client_id} these OAuth scopes: "
    + ",".join(SCOPES)
    + "; and make {admin} an admin who may read users and groups"
)


class GoogleSignInRefused(SourceAuthError):
    """Google's token endpoint refused the service account: nothing else can be read either."""


def error_body(content: bytes) -> tuple[str, str]:
    """(reason, message) of an error body as Google sends it."""
    try:
        error = json.loads(content.decode("utf-8", "replace")).get("error", {})
    except (ValueError, AttributeError):
        return "", content[:200].decode("utf-8", "replace")
    if not isinstance(error, dict):
        return "", str(error)[:200]
    errors = error.get("errors") or [{}]
    reason = str(errors[0].get("reason", "") if isinstance(errors[0], dict) else "")
    return reason, str(error.get("message", ""))[:300]


def sign_in_refused(exc: Exception, client_id: str, admin: str) -> GoogleSignInRefused:
    """The token endpoint refused: unauthorized_client (no delegation, or a scope not
    granted), invalid_grant (a deleted key, a wrong admin address)…"""
    return GoogleSignInRefused(
        f"Google refused the service account's sign-in as {admin} ({first_line(exc)}): "
        + DELEGATION_FIX.format(client_id=client_id, admin=admin)
    )


def http_refusal(status: int, content: bytes, what: str, client_id: str, admin: str) -> SourceError:
    """An answer the client library gave up on (after its retries), as dirhook's error."""
    reason, message = error_body(content)
    if status == 401 or (status == 403 and reason not in RATE_LIMIT_REASONS):
        return SourceAuthError(
            f"Google refused {what} ({status} {reason or 'forbidden'}: {message}): "
            + DELEGATION_FIX.format(client_id=client_id, admin=admin)
        )
    if status in (400, 404) and what.startswith("users.list"):
        return SourceConfigError(f"Google refused {what} ({status} {reason}: {message})")
    return SourceUnavailable(f"Google answered {status} {reason} to {what}: {message}")


def first_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
