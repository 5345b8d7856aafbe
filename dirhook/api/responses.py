"""The error answers of every route, in the OpenAPI document (the contract clients build on).

Derived from each route rather than listed by hand beside it, so a new route cannot forget
one: every resource route can answer 401 (its bearer token) and 422 (its input); one with
a body 400 (not JSON in UTF-8) and 413 (over DIRHOOK_API_MAX_BODY_BYTES); one that names a
resource, by path or by an ``…_id`` field, 404; a write 409 (the resource's state, or a
race a constraint caught); one that needs the admin token 403; one that reaches Temporal
503. Every error body is ``{"detail": …}``: a message, or pydantic's list of field errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """What every 4xx and 503 answers."""

    detail: str | list[FieldError] = Field(
        description="why: a message, or (422 from validation) one entry per field in error"
    )


UNREADABLE = "The body is not JSON (or not UTF-8)."
UNAUTHORIZED = "No bearer token, or one this API does not know (revoked keys included)."
FORBIDDEN = "This needs the admin token; an organization's API key may not."
NOT_FOUND = "No such resource, or one of another organization (the same answer)."
CONFLICT = "The resource's state does not allow it (the message says why), or it conflicts with existing data."
TOO_LARGE = "The body is over DIRHOOK_API_MAX_BODY_BYTES; refused before it is read."
INVALID = "The input breaks a rule: the message, or each field's entry, says which."
UNAVAILABLE = "Temporal did not answer; nothing was changed. Retry later."

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _names_a_resource(route: APIRoute) -> bool:
    if route.dependant.path_params:
        return True
    fields = [p.name for p in route.dependant.query_params]
    body = route.body_field
    if body is not None and isinstance(body.field_info.annotation, type):
        model = body.field_info.annotation
        fields += list(getattr(model, "model_fields", {}))
    return any(name.endswith(("_id", "_ids")) for name in fields)


def route_errors(route: APIRoute, admin_only: Any, temporal_needed: tuple[Any, ...]) -> dict[str, str]:
    """Status → description of the errors this route can answer."""
    calls = set(_calls(route.dependant))
    found = {"401": UNAUTHORIZED, "422": INVALID}
    if route.body_field is not None:
        found |= {"400": UNREADABLE, "413": TOO_LARGE}
    if admin_only in calls:
        found["403"] = FORBIDDEN
    if _names_a_resource(route):
        found["404"] = NOT_FOUND
    if (route.methods or set()) & WRITES:
        found["409"] = CONFLICT
    if calls & set(temporal_needed):
        found["503"] = UNAVAILABLE
    return found


def document_errors(app: FastAPI, routers: list[APIRouter], admin_only: Any, temporal_needed: tuple[Any, ...]) -> None:
    """Have the app's OpenAPI document carry the errors of every route of ``routers``, as
    FastAPI's docs extend it ("Extending OpenAPI"): built once, then served from
    app.openapi_schema. The routers' own routes are read (their paths carry the prefix), not
    the app's, whose included routers FastAPI keeps in a form of its own.
    ``admin_only``: the dependency that answers 403; ``temporal_needed``: those reaching Temporal."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorOut"] = error_schema
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for route in (r for router in routers for r in router.routes):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                responses = operation.setdefault("responses", {})
                for status, description in route_errors(route, admin_only, temporal_needed).items():
                    given = responses.get(status, {})
                    # FastAPI's own 422 says the detail is a list; ours is a list or a message.
                    if status != "422":  # FastAPI's own 422 says only "Validation Error"
                        description = given.get("description") or description
                    responses[status] = {"description": description, "content": ref}
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(schema: dict[str, Any], path: str) -> list[str]:
    """The methods the document lists for ``path`` (its templates matched segment by
    segment): a 405's ``Allow``. Starlette's names only the first route that matched the
    path, though GET and POST of one path are routes of their own."""
    segments = path.rstrip("/").split("/")
    methods: set[str] = set()
    for template, operations in schema.get("paths", {}).items():
        parts = template.rstrip("/").split("/")
        if len(parts) == len(segments) and all(
            p == s or (p.startswith("{") and p.endswith("}") and s) for p, s in zip(parts, segments, strict=True)
        ):
            methods |= {m.upper() for m in operations}
    return sorted(methods)
