"""A Google Workspace directory's settings, as an operator gives them (the service account's
key is stored apart, write-only, like the other providers' secrets)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import ConfigDict, Field, field_validator

from dirhook.strict_json import StrictJsonModel

# What the service account's client ID must be granted in the Admin console (Security > API
# controls > Domain-wide delegation). Read-only: dirhook never writes to the directory. The
# Reports scope is what activities.watch needs for group and membership changes.
SCOPES = (
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.reports.audit.readonly",
)
# An email address as Google accepts it for a user or group (loose: Google itself judges).
# Published in the schema too, so a client knows what is refused.
EMAIL_PATTERN = r"^[^@\s'\"\\]+@[^@\s'\"\\.]+(\.[^@\s'\"\\.]+)+$"
_EMAIL = re.compile(EMAIL_PATTERN)
# An org unit path: "/" or "/Sales/EMEA" (no quotes: it goes into users.list's query).
ORG_UNIT_PATTERN = r"^/([^'\"\\/]+(/[^'\"\\/]+)*/?)?$"
_ORG_UNIT = re.compile(ORG_UNIT_PATTERN)


class GoogleConfig(StrictJsonModel):
    """A Google Workspace account, read through the Admin SDK Directory API as a service account
    with domain-wide delegation, impersonating ``admin_email``."""

    model_config = ConfigDict(extra="forbid")

    admin_email: str = Field(
        min_length=3,
        max_length=320,
        json_schema_extra={"pattern": EMAIL_PATTERN},
        description="the Workspace admin the service account acts as (delegation)",
    )
    customer: str = Field(
        default="my_customer",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_]+$",
        description="the account's customer ID; my_customer: the admin's own account",
    )
    org_units: list[Annotated[str, Field(json_schema_extra={"pattern": ORG_UNIT_PATTERN})]] = Field(
        default_factory=list,
        max_length=50,
        description="only users in these org units (paths such as /Sales, sub-units included); empty: all",
    )
    group_emails: list[Annotated[str, Field(json_schema_extra={"pattern": EMAIL_PATTERN})]] = Field(
        default_factory=list, max_length=50, description="only these groups (by email); empty: every group"
    )
    api_base_url: str = Field(default="https://admin.googleapis.com", description="the Admin SDK's host")
    token_uri: str = Field(
        default="https://oauth2.googleapis.com/token", description="Google's OAuth 2.0 token endpoint"
    )
    page_size: int = Field(default=500, ge=1, le=500, description="users per users.list page (Google's maximum)")
    timeout_seconds: float = Field(default=30, gt=0, le=300)
    retries: int = Field(
        default=6, ge=0, le=10, description="retries of a request Google answers 429/5xx/rate-limited (backoff)"
    )
    flavour: Literal["google"] = Field(default="google", description="attribute defaults: always 'google'")

    @field_validator("admin_email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError("must be an email address (the admin the service account impersonates)")
        return v

    @field_validator("group_emails")
    @classmethod
    def _group_emails(cls, v: list[str]) -> list[str]:
        out = []
        for value in v:
            if not _EMAIL.match(value):
                raise ValueError(f"{value!r} is not a group's email address")
            out.append(value.lower())
        return out

    @field_validator("org_units")
    @classmethod
    def _org_units(cls, v: list[str]) -> list[str]:
        # They go into users.list's `query` (orgUnitPath='…'): no quote can reach it.
        for value in v:
            if not _ORG_UNIT.match(value):
                raise ValueError(f"{value!r} is not an org unit path (such as /Sales or /Sales/EMEA)")
        return [value.rstrip("/") or "/" for value in v]

    @field_validator("api_base_url", "token_uri")
    @classmethod
    def _https(cls, v: str) -> str:
        v = v.strip()
        parsed = urlparse(v)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError("must be an https:// URL")
        return v.rstrip("/")


def parse_service_account_key(text: str) -> dict[str, Any]:
    """The key file's JSON, checked for what signing in needs (ValueError, never echoing the key)."""
    try:
        key = json.loads(text)
    except (ValueError, TypeError):
        raise ValueError("service_account_key: not JSON (paste the whole key file Google gave you)") from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ValueError('service_account_key: not a service account key (its "type" is not "service_account")')
    missing = [k for k in ("client_email", "private_key", "private_key_id") if not isinstance(key.get(k), str)]
    if missing:
        raise ValueError(f"service_account_key: the key file lacks {', '.join(missing)}")
    if "PRIVATE KEY-----" not in key["private_key"]:
        raise ValueError("service_account_key: private_key is not a PEM private key")
    return key
