"""Organizations and their API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from dirhook.strict_json import StrictJsonModel


class OrganizationIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class OrganizationOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class ApiKeyIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. 'HR portal'")


class ApiKeyOut(BaseModel):
    id: str
    organization_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the bearer token; shown once, only its digest is stored")
