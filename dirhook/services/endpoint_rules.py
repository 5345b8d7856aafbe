"""What an endpoint's settings must satisfy before they are stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dirhook.config import Settings
from dirhook.db.schema import Directory
from dirhook.endpoint_auth import encode_headers
from dirhook.services.errors import InvalidInput, NotFound
from dirhook.ssrf import UnsafeURL, check_url


def check_scheme(url: str, settings: Settings) -> None:
    if url.lower().startswith("http://") and not settings.allow_http_endpoints:
        raise InvalidInput(
            "url: http:// endpoints are refused (events, signatures and custom headers would travel "
            "in clear); use https://, or set DIRHOOK_ALLOW_HTTP_ENDPOINTS=true"
        )


async def guard_url(url: str, settings: Settings) -> None:
    """Refuses URLs that resolve to where the deliverer must not go (see dirhook.ssrf)."""
    try:
        await check_url(url, settings.allow_private_endpoints)
    except UnsafeURL as exc:
        raise InvalidInput(f"url: {exc}") from None


def check_directories(session: Session, organization_id: str, directory_ids: list[str] | None) -> None:
    for directory_id in directory_ids or ():
        d = session.get(Directory, directory_id)
        if d is None or d.organization_id != organization_id:
            raise NotFound(  # a resource the body names, missing: 404, as for the path
                f"directory_ids: {directory_id} is not a directory of organization {organization_id}"
            )


def write_only(values: dict[str, Any]) -> dict[str, Any]:
    """The write-only fields as they are stored: headers as JSON ({} and null: none)."""
    if "headers" in values:
        values["headers"] = encode_headers(values["headers"]) if values["headers"] else None
    return values
