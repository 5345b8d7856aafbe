"""Request bodies read as their JSON Schema says: strictly typed, no coercion.

pydantic's lax mode reads `"is_default": 0` as false and `"page_size": "100"` as 100, so the
API would accept what its published schema forbids. Strict mode refuses those, but also
`23.0` for an integer, which JSON Schema calls an integer: integral floats are made ints
first (a float field takes an int as well, so this changes nothing else).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class StrictJsonModel(BaseModel):
    model_config = ConfigDict(strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_floats_are_integers(cls, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
