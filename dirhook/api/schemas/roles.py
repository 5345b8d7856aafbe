"""Roles and group → role mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,99}$", description="what receivers get, e.g. `admin`")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher wins `role` when a user has several")
    is_default: bool = Field(
        default=False, description="the role of users no mapping gives a role (one per organization)"
    )
    organization_id: str | None = None


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    is_default: bool | None = None


class RoleOut(BaseModel):
    id: str
    organization_id: str
    slug: str
    name: str
    description: str | None
    priority: int
    is_default: bool
    created_at: datetime


class RoleMappingIn(BaseModel):
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
