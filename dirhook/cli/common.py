"""What every command shares: the consoles, tables, and calls to dirhook's HTTP API (the
CLI changes nothing itself: it asks the API, so the same rules apply to both)."""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from dirhook.config import Settings

console = Console()
err = Console(stderr=True)


def new_table(*columns: str) -> Table:
    """IDs are what people copy from these tables: never truncate them."""
    out = Table()
    for name in columns:
        if name in ("id", "delivery", "event"):
            out.add_column(name, no_wrap=True, min_width=30 if name != "delivery" else 8)
        else:
            out.add_column(name, overflow="fold")
    return out


class ApiError(Exception):
    pass


def credentials() -> tuple[str, str]:
    """(the bearer token, where it came from). The CLI never makes a token: one it made
    would not be the running stack's, and every call would answer 401."""
    # DIRHOOK_API_KEY: an organization's key, for someone who may see that organization only.
    if key := os.environ.get("DIRHOOK_API_KEY"):
        return key, "DIRHOOK_API_KEY"
    token, source = Settings().admin_token_source()
    if token is None:
        raise ApiError(
            f"no admin token: DIRHOOK_ADMIN_TOKEN is unset and {source} does not exist. "
            "Start the stack first (scripts/dev writes it there), or set DIRHOOK_DATA_DIR to the "
            "running stack's data directory, or DIRHOOK_ADMIN_TOKEN / DIRHOOK_API_KEY"
        )
    return token, source


def api_client() -> tuple[httpx.Client, str]:
    base = os.environ.get("DIRHOOK_API_URL", Settings().api_url)
    token, source = credentials()
    return httpx.Client(base_url=base, timeout=30, headers={"authorization": f"Bearer {token}"}), source


def call(method: str, path: str, **kw: Any) -> Any:
    """One API request; its JSON answer, or ApiError with the API's message."""
    client, source = api_client()
    with client:
        try:
            resp = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the dirhook API at {client.base_url}: {exc} (is `dirhook dev` running?)"
            ) from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        if resp.status_code == 401:
            detail = (
                f"{detail} (the token used: {source}; is that the data directory of the stack at {client.base_url}?)"
            )
        raise ApiError(f"{resp.status_code}: {detail}")
    return resp.json() if resp.content else None


def request(method: str, path: str, **kw: Any) -> Any:
    """``call``, for a command: an API error is printed and the command exits with status 1."""
    try:
        return call(method, path, **kw)
    except ApiError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from None
