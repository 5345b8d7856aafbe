"""Roles and group → role mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from dirhook.strict_json import StrictJsonModel


class RoleIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,99}$", description="what receivers get, e.g. `admin`")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher wins `role` when a user has several")
    is_default: bool = Field(
        default=False, description="the role of users no mapping gives a role (one per organization)"
    )
    organization_id: str | None = None


class RolePatch(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")

    # Absent: unchanged. null is no value for these three (the route says so with 422), so the
    # published schema does not offer it (SkipJsonSchema); description may be cleared with null.
    name: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = None
    description: str | None = Field(default=None, max_length=1000)
    priority: Annotated[int, Field(ge=-1000, le=1000)] | SkipJsonSchema[None] = None
    is_default: bool | SkipJsonSchema[None] = None


class RoleOut(BaseModel):
    id: str
    organization_id: str
    slug: str
    name: str
    description: str | None
    priority: int
    is_default: bool
    created_at: datetime


class RoleMappingIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="the role's slug")
    match: Literal["external_id", "name"] = Field(description="match the group's external id (exact) or its name")
    pattern: str = Field(min_length=1, max_length=500, description="for `name`: exact, or a glob like `eng-*`")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str, info: ValidationInfo) -> str:
        from dirhook.roles import validate_glob

        if info.data.get("match") == "name":
            try:
                validate_glob(v)
            except ValueError as exc:
                raise ValueError(f"malformed glob: {exc}") from None
        return v


class RoleMappingOut(BaseModel):
    id: str
    directory_id: str
    role: str
    match: str
    pattern: str
    created_at: datetime
