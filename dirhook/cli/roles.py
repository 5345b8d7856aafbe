"""`dirhook roles …`: roles that group membership grants."""

from __future__ import annotations

from typing import Any

import typer

from dirhook.cli.app import app
from dirhook.cli.common import console, err, new_table, request

roles_app = typer.Typer(help="Roles that group membership grants.", no_args_is_help=True)
app.add_typer(roles_app, name="roles")


@roles_app.command("add")
def add_role(
    slug: str,
    name: str | None = None,
    priority: int = typer.Option(0, help="higher wins `role`"),
    default: bool = typer.Option(False, "--default", help="for users no mapping gives a role"),
    description: str | None = None,
    organization_id: str | None = None,
) -> None:
    """Create a role (its slug is what receivers get in `roles`)."""
    body: dict[str, Any] = {"slug": slug, "name": name or slug, "priority": priority, "is_default": default}
    if description:
        body["description"] = description
    if organization_id:
        body["organization_id"] = organization_id
    r = request("POST", "/v1/roles", json=body)
    console.print(f"role {r['id']} ({r['slug']}) created")


@roles_app.command("list")
def list_roles(organization_id: str | None = None) -> None:
    """Roles, highest priority first."""
    table = new_table("id", "slug", "name", "priority", "default")
    params = {"organization_id": organization_id} if organization_id else {}
    for r in request("GET", "/v1/roles", params=params):
        table.add_row(r["id"], r["slug"], r["name"], str(r["priority"]), "yes" if r["is_default"] else "")
    console.print(table)


@roles_app.command("delete")
def delete_role(
    role: str = typer.Argument(..., help="the role's slug or id"),
    organization_id: str | None = typer.Option(None, help="where the slug is, if several organizations have it"),
) -> None:
    """Delete a role and its mappings; users who had it are updated at once."""
    found = resolve_role(role, organization_id)
    request("DELETE", f"/v1/roles/{found['id']}")
    console.print(f"role {found['slug']} ({found['id']}) deleted")


def resolve_role(role: str, organization_id: str | None = None) -> dict[str, Any]:
    """A role named by its id (``role_…``) or its slug: commands take either."""
    params = {"organization_id": organization_id} if organization_id else {}
    roles = request("GET", "/v1/roles", params=params)
    matches = [r for r in roles if role in (r["id"], r["slug"])]
    if not matches:
        err.print(f"[red]error[/red] no role {role!r} (by slug or id); `dirhook roles list` shows them")
        raise typer.Exit(1)
    if len(matches) > 1:
        orgs = ", ".join(r["organization_id"] for r in matches)
        err.print(f"[red]error[/red] several organizations have a role {role!r} ({orgs}): give --organization-id")
        raise typer.Exit(2)
    return dict(matches[0])
