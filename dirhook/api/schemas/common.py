"""Shared shapes: pages of results, and /healthz."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="pass as `after` to get the next page")
    has_more: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    temporal: str
    database_schema: str = Field(
        default="ok", description="ok, or how the database's schema differs from the code's (run `dirhook migrate`)"
    )


# Pages of users, groups and events as receivers see them. Spelled ``Page[dict]`` so the
# OpenAPI component keeps its published name (Page_dict_) for generated clients.
ObjectPage = Page[dict]  # type: ignore[type-arg]
