"""`dirhook orgs …`: organizations and their API keys."""

from __future__ import annotations

import typer

from dirhook.cli.app import app
from dirhook.cli.common import console, new_table, request

orgs_app = typer.Typer(help="Organizations and their API keys.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")


@orgs_app.command("add")
def add_organization(name: str) -> None:
    """Create an organization (admin token only)."""
    r = request("POST", "/v1/organizations", json={"name": name})
    console.print(f"organization {r['id']} ({r['name']}) created")


@orgs_app.command("list")
def list_organizations() -> None:
    """Organizations (admin token only; an API key sees its own)."""
    table = new_table("id", "name", "created")
    for o in request("GET", "/v1/organizations"):
        table.add_row(o["id"], o["name"], o["created_at"])
    console.print(table)


@orgs_app.command("add-key")
def add_api_key(organization_id: str, name: str = typer.Option(..., help="what the key is for")) -> None:
    """Create an API key that sees this organization only. Printed once; keep it."""
    r = request("POST", f"/v1/organizations/{organization_id}/api-keys", json={"name": name})
    console.print(f"API key {r['id']} created for {r['organization_id']}. It is shown this once:")
    console.print(r["key"], soft_wrap=True, highlight=False)


@orgs_app.command("keys")
def list_api_keys(organization_id: str) -> None:
    """The organization's API keys (never the keys themselves): when made, last used, revoked."""
    table = new_table("id", "name", "created", "last used", "revoked")
    for k in request("GET", f"/v1/organizations/{organization_id}/api-keys"):
        table.add_row(k["id"], k["name"], k["created_at"], k["last_used_at"] or "", k["revoked_at"] or "")
    console.print(table)


@orgs_app.command("revoke-key")
def revoke_api_key(organization_id: str, key_id: str) -> None:
    """Revoke at once: the next request with the key gets 401."""
    request("DELETE", f"/v1/organizations/{organization_id}/api-keys/{key_id}")
    console.print(f"API key {key_id} revoked")
