"""An Entra directory's settings, as an operator gives them (the client secret is stored apart)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import ConfigDict, Field, field_validator

from dirhook.strict_json import StrictJsonModel

# A group's object ID as Graph gives it (the validator below also takes it braced or upper case).
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class EntraConfig(StrictJsonModel):
    """An Entra tenant and the app registration dirhook reads it as (the client secret is
    stored apart). The app needs the application permissions User.Read.All and
    GroupMember.Read.All, nothing more."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=100, description="directory (tenant) ID or primary domain")
    client_id: str = Field(min_length=1, max_length=100, description="application (client) ID")
    authority_host: str = Field(
        default="https://login.microsoftonline.com", description="national clouds: https://login.microsoftonline.us, …"
    )
    graph_base_url: str = Field(
        default="https://graph.microsoft.com/v1.0", description="national clouds: https://graph.microsoft.us/v1.0, …"
    )
    credential: Literal["secret", "certificate"] = Field(
        default="secret", description="how the app proves itself: a client secret, or a certificate (PEM with its key)"
    )
    only_enabled: bool = Field(default=False, description="leave out users whose accountEnabled is false")
    group_ids: list[Annotated[str, Field(json_schema_extra={"pattern": GUID_PATTERN})]] = Field(
        default_factory=list,
        max_length=50,
        description="only these groups (object IDs) and their direct members; empty: the whole tenant",
    )
    page_size: int = Field(default=999, ge=1, le=999, description="objects per Graph page (odata.maxpagesize)")
    timeout_seconds: float = Field(default=30, gt=0, le=300)
    flavour: str = Field(
        default="entra", description="attribute defaults: always 'entra'", json_schema_extra={"enum": ["entra"]}
    )

    @field_validator("authority_host", "graph_base_url")
    @classmethod
    def _https(cls, v: str) -> str:
        v = v.strip()  # pasted with spaces around it
        parsed = urlparse(v)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError("must be an https:// URL")
        return v.rstrip("/")

    @field_validator("group_ids")
    @classmethod
    def _object_ids(cls, v: list[str]) -> list[str]:
        # They go into Graph's OData $filter ("id eq '…'"): only GUIDs, in their canonical
        # form, so no quote or operator can reach the filter (issue 14, finding 10).
        out = []
        for value in v:
            try:
                out.append(str(uuid.UUID(value)))
            except (ValueError, AttributeError, TypeError):
                raise ValueError(f"{value!r} is not a group object ID (a GUID)") from None
        return out

    @field_validator("flavour")
    @classmethod
    def _flavour(cls, v: str) -> str:
        if v != "entra":
            raise ValueError("an Entra directory's flavour is 'entra'")
        return v
