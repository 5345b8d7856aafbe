"""`dirhook directories …` and `dirhook sync`: connecting, inspecting and syncing directories."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from dirhook.cli.app import app
from dirhook.cli.common import console, err, new_table, request
from dirhook.contracts import SyncState

directories_app = typer.Typer(help="Connect and inspect directories.", no_args_is_help=True)
app.add_typer(directories_app, name="directories")


@directories_app.command("add-ldap")
def add_ldap(
    name: str = typer.Option(..., help="a name for people"),
    url: str = typer.Option(..., help="ldap://host:port or ldaps://host:port"),
    bind_dn: str = typer.Option(..., help="DN to bind as"),
    bind_password: str = typer.Option(
        None,  # not "required": it is prompted for
        envvar="DIRHOOK_LDAP_BIND_PASSWORD",
        prompt=True,
        hide_input=True,
        help="prompted for when not given (or DIRHOOK_LDAP_BIND_PASSWORD)",
    ),
    user_base_dn: str = typer.Option(...),
    group_base_dn: str | None = typer.Option(None, help="defaults to the user base DN"),
    user_filter: str | None = None,
    group_filter: str | None = None,
    flavour: str = typer.Option("openldap", help="openldap or active_directory"),
    start_tls: bool = typer.Option(False, "--start-tls", help="StartTLS on an ldap:// connection"),
    organization_id: str | None = None,
    no_test: bool = typer.Option(False, "--no-test", help="create it without connecting to the server first"),
) -> None:
    """Connect an LDAP or Active Directory directory (tested first: bind, bases, counts)."""
    ldap: dict[str, Any] = {
        "url": url,
        "bind_dn": bind_dn,
        "user_base_dn": user_base_dn,
        "flavour": flavour,
        "start_tls": start_tls,
    }
    if group_base_dn:
        ldap["group_base_dn"] = group_base_dn
    if user_filter:
        ldap["user_filter"] = user_filter
    if group_filter:
        ldap["group_filter"] = group_filter
    body = {"name": name, "ldap": ldap, "bind_password": bind_password}
    if organization_id:
        body["organization_id"] = organization_id
    d = create(body, no_test, f"binding to {url} as {bind_dn}")
    console.print(f"directory [bold]{d['id']}[/bold] created; sync it with: dirhook sync {d['id']}", soft_wrap=True)


def create(body: dict[str, Any], no_test: bool, testing: str) -> Any:
    """POST /v1/directories, tested first unless ``no_test`` (a refusal creates nothing)."""
    if no_test:
        return request("POST", "/v1/directories", json=body)
    with console.status(f"testing the connection: {testing}…"):
        d = request("POST", "/v1/directories", json=body, params={"test": "true"})
    console.print(f"connection tested: {d['connection_test']['summary']}", soft_wrap=True)
    return d


@directories_app.command("test")
def test_directory(directory_id: str) -> None:
    """Connect to the directory's source as a pass would (bind, bases, counts); changes nothing."""
    with console.status("testing the connection…"):
        r = request("POST", f"/v1/directories/{directory_id}/test")
    if not r["ok"]:
        err.print(f"[red]connection test failed[/red] ({r['error_kind']}): {r['error']}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {r['summary']}", soft_wrap=True)
    for note in r["notes"]:
        console.print(f"  {note}", soft_wrap=True)


@directories_app.command("add-entra")
def add_entra(
    name: str = typer.Option(..., help="a name for people"),
    tenant_id: str = typer.Option(..., help="the directory (tenant) ID or primary domain"),
    client_id: str = typer.Option(..., help="the app registration's application (client) ID"),
    client_secret: str | None = typer.Option(
        None, envvar="DIRHOOK_ENTRA_CLIENT_SECRET", help="prompted for when neither it nor a certificate is given"
    ),
    certificate_file: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="PEM with the app certificate's private key, instead of a secret"
    ),
    group_id: list[str] = typer.Option([], "--group-id", help="repeatable: only these groups and their members"),
    authority_host: str | None = typer.Option(None, help="national clouds, e.g. https://login.microsoftonline.us"),
    graph_base_url: str | None = typer.Option(None, help="national clouds, e.g. https://graph.microsoft.us/v1.0"),
    only_enabled: bool = typer.Option(False, "--only-enabled", help="leave out disabled accounts"),
    organization_id: str | None = None,
    no_test: bool = typer.Option(False, "--no-test", help="create it without asking Graph first"),
) -> None:
    """Connect a Microsoft Entra ID tenant (read through Microsoft Graph delta queries). The app
    needs the application permissions User.Read.All and GroupMember.Read.All."""
    entra: dict[str, Any] = {
        "tenant_id": tenant_id,
        "client_id": client_id,
        "only_enabled": only_enabled,
        "group_ids": group_id,
    }
    if certificate_file:
        entra["credential"] = "certificate"
        client_secret = certificate_file.read_text()
    elif not client_secret:
        client_secret = typer.prompt("client secret", hide_input=True)
    if authority_host:
        entra["authority_host"] = authority_host
    if graph_base_url:
        entra["graph_base_url"] = graph_base_url
    body: dict[str, Any] = {"name": name, "provider": "entra", "entra": entra, "client_secret": client_secret}
    if organization_id:
        body["organization_id"] = organization_id
    d = create(body, no_test, f"signing in to tenant {tenant_id} as app {client_id}")
    console.print(
        f"directory [bold]{d['id']}[/bold] created; sync it with: dirhook sync {d['id']} --full", soft_wrap=True
    )


@directories_app.command("add-google")
def add_google(
    name: str = typer.Option(..., help="a name for people"),
    key_file: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="the service account's JSON key file (read, sent once, never shown)"
    ),
    admin_email: str = typer.Option(..., help="a Workspace admin the service account acts as (delegation)"),
    customer: str | None = typer.Option(None, help="the account's customer ID (default: my_customer)"),
    org_unit: list[str] = typer.Option([], "--org-unit", help="repeatable: only users in this org unit (/Sales)"),
    group_email: list[str] = typer.Option([], "--group-email", help="repeatable: only this group and its members"),
    organization_id: str | None = None,
    no_test: bool = typer.Option(False, "--no-test", help="create it without asking Google first"),
) -> None:
    """Connect a Google Workspace account (read through the Admin SDK Directory API). The service
    account's client ID needs domain-wide delegation of the read-only scopes the README lists."""
    google: dict[str, Any] = {"admin_email": admin_email, "org_units": org_unit, "group_emails": group_email}
    if customer:
        google["customer"] = customer
    body: dict[str, Any] = {
        "name": name,
        "provider": "google",
        "google": google,
        "service_account_key": key_file.read_text(),
    }
    if organization_id:
        body["organization_id"] = organization_id
    d = create(body, no_test, f"signing in to Google Workspace as {admin_email}")
    console.print(
        f"directory [bold]{d['id']}[/bold] created; sync it with: dirhook sync {d['id']} --full", soft_wrap=True
    )


@directories_app.command("add-scim")
def add_scim(
    name: str = typer.Option(..., help="a name for people"),
    organization_id: str | None = typer.Option(None, help="default: the default organization"),
) -> None:
    """Create a SCIM directory: prints the tenant URL and bearer token to give the IdP (shown once)."""
    body: dict[str, Any] = {"name": name, "provider": "scim"}
    if organization_id:
        body["organization_id"] = organization_id
    d = request("POST", "/v1/directories", json=body)
    console.print(f"SCIM directory {d['id']} created. Give your identity provider (shown once):")
    console.print(f"  tenant URL    {d['scim_base_url']}", highlight=False)
    console.print(f"  bearer token  {d['scim_token']}", soft_wrap=True, highlight=False)


@directories_app.command("rotate-scim-token")
def rotate_scim_token(directory_id: str) -> None:
    """A new SCIM bearer token (shown once); the old one stops working at once."""
    r = request("POST", f"/v1/directories/{directory_id}/scim-token")
    console.print(f"new bearer token for {r['scim_base_url']} (the previous one no longer works):")
    console.print(r["scim_token"], soft_wrap=True, highlight=False)


@directories_app.command("list")
def list_directories() -> None:
    """Every directory you may see: id, name, provider, where it reads from."""
    rows = request("GET", "/v1/directories")
    table = new_table("id", "name", "provider", "url", "organization")
    for d in rows:
        table.add_row(d["id"], d["name"], d["provider"], d["config"].get("url", ""), d["organization_id"])
    console.print(table)


@directories_app.command("show")
def show_directory(directory_id: str) -> None:
    """The directory, its source's health and its sync (JSON on stdout, a summary on stderr)."""
    d = request("GET", f"/v1/directories/{directory_id}")
    status = request("GET", f"/v1/directories/{directory_id}/sync")
    source = status["source"]
    if source["state"] == "never_synced":
        err.print("[yellow]source: never synced[/yellow] (no pass has read it yet)", soft_wrap=True)
    elif source["state"] == "failing":
        err.print(f"[red]source: failing[/red] since {source['last_error_at']}: {source['last_error']}", soft_wrap=True)
    else:
        err.print(f"[green]source: healthy[/green], last read {source['last_success_at']}", soft_wrap=True)
    if status.get("temporal_ui_url"):
        err.print(f"Temporal UI: {status['temporal_ui_url']}", soft_wrap=True, highlight=False)
    console.print_json(json.dumps({"directory": d, "sync": status}))


@directories_app.command("delete")
def delete_directory(directory_id: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete a directory with its users, groups and events (its schedule and listener stop)."""
    if not yes:
        typer.confirm(f"delete {directory_id} with its users, groups and events?", abort=True)
    request("DELETE", f"/v1/directories/{directory_id}")
    console.print(f"deleted {directory_id}")


@directories_app.command("users")
def list_users(directory_id: str, limit: int = typer.Option(100, help="at most this many")) -> None:
    """The directory's users as receivers get them: username, name, active, groups."""
    page = request("GET", f"/v1/directories/{directory_id}/users", params={"limit": limit})
    table = new_table("id", "username", "name", "active", "groups")
    for u in page["data"]:
        table.add_row(
            u["id"],
            u.get("username") or "",
            u.get("display_name") or "",
            str(u["active"]),
            ", ".join(g["name"] for g in u["groups"]),
        )
    console.print(table)


@directories_app.command("schedule")
def schedule(
    directory_id: str,
    pause: bool = typer.Option(False, "--pause", help="stop the scheduled passes (on-demand ones still run)"),
    resume: bool = typer.Option(False, "--resume", help="start them again"),
    interval: int | None = typer.Option(None, help="seconds between incremental passes; 0 removes it"),
) -> None:
    """Show, pause, resume or change the directory's schedule of incremental passes."""
    if pause and resume:
        err.print("[red]error[/red] --pause or --resume, not both")
        raise typer.Exit(2)
    if interval is not None:
        request("PATCH", f"/v1/directories/{directory_id}", json={"sync_interval_seconds": interval})
    if pause or resume:
        request("POST", f"/v1/directories/{directory_id}/schedule/{'pause' if pause else 'resume'}")
    sc = request("GET", f"/v1/directories/{directory_id}/schedule")
    if not sc["interval_seconds"]:
        console.print("no schedule: passes run only when requested")
        return
    console.print(
        f"every {sc['interval_seconds']} s, {'paused' if sc['paused'] else 'active'}; "
        f"next: {', '.join(sc['next_runs']) or '-'}",
        soft_wrap=True,
    )


@directories_app.command("deletions")
def deletions(
    directory_id: str,
    approve: bool = typer.Option(False, "--approve", help="delete them now"),
    reject: bool = typer.Option(False, "--reject", help="keep the objects"),
) -> None:
    """Deletions a pass held back (over the deletion threshold): show them, approve or reject."""
    if approve and reject:
        err.print("[red]error[/red] --approve or --reject, not both")
        raise typer.Exit(2)
    if approve or reject:
        r = request("POST", f"/v1/directories/{directory_id}/deletions/{'approve' if approve else 'reject'}")
        console.print(r["outcome"])
        return
    held = request("GET", f"/v1/directories/{directory_id}/deletions")
    state = "awaiting approval" if held["awaiting_approval"] else "nothing awaits approval"
    console.print(f"{state}: {held['users']} users and {held['groups']} groups held")
    for obj in held["sample"]:
        console.print(f"  {obj['object']} {obj['id']} {obj.get('username') or obj.get('name') or ''}")


@directories_app.command("map-role")
def map_role(
    directory_id: str,
    role: str = typer.Argument(..., help="the role's slug or id"),
    group_name: str | None = typer.Option(None, help="group name, exact or a glob like 'eng-*'"),
    group_id: str | None = typer.Option(None, help="the group's external id (entryUUID / objectGUID)"),
) -> None:
    """Members of matching groups (directly or through nesting) get the role; applied at once."""
    if (group_name is None) == (group_id is None):
        err.print("[red]error[/red] give exactly one of --group-name and --group-id")
        raise typer.Exit(2)
    from dirhook.cli.roles import resolve_role

    d = request("GET", f"/v1/directories/{directory_id}")
    slug = resolve_role(role, d["organization_id"])["slug"]
    body = {"role": slug, "match": "name" if group_name else "external_id", "pattern": group_name or group_id}
    m = request("POST", f"/v1/directories/{directory_id}/role-mappings", json=body)
    console.print(f"mapping {m['id']}: {m['match']} {m['pattern']!r} -> {m['role']}")


@directories_app.command("role-mappings")
def list_role_mappings(directory_id: str) -> None:
    """The directory's group -> role mappings."""
    table = new_table("id", "role", "match", "pattern")
    for m in request("GET", f"/v1/directories/{directory_id}/role-mappings"):
        table.add_row(m["id"], m["role"], m["match"], m["pattern"])
    console.print(table)


@directories_app.command("unmap-role")
def unmap_role(directory_id: str, mapping_id: str) -> None:
    """Remove a mapping; users lose the role at once."""
    request("DELETE", f"/v1/directories/{directory_id}/role-mappings/{mapping_id}")
    console.print(f"mapping {mapping_id} removed")


@app.command()
def sync(
    directory_id: str,
    full: bool = typer.Option(False, "--full", help="full listing instead of changes"),
    wait: bool = typer.Option(True, help="wait for the pass and show its progress"),
    timeout: float = typer.Option(3600, help="seconds to wait at most"),
    cancel: bool = typer.Option(False, "--cancel", help="stop the running pass (what it committed stays)"),
) -> None:
    """Sync a directory now (queued behind a running pass, never overlapping it)."""
    if cancel:
        cancel_pass(directory_id, timeout)
        return
    started = request(
        "POST", f"/v1/directories/{directory_id}/sync", params={"mode": "full" if full else "incremental"}
    )
    console.print(
        f"workflow [bold]{started['workflow_id']}[/bold] ({started['mode']})  {started.get('temporal_ui_url') or ''}",
        soft_wrap=True,
        highlight=False,
    )
    if not wait:
        return
    try:
        status, run = follow(directory_id, timeout)
    except KeyboardInterrupt:
        err.print(
            f"\nstopped waiting; the pass goes on in Temporal.\n"
            f"follow it: dirhook directories show {directory_id}   (or {started.get('temporal_ui_url') or 'the Temporal UI'})\n"
            f"stop it:   dirhook sync {directory_id} --cancel",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(130) from None
    finish(status, run)


def cancel_pass(directory_id: str, timeout: float) -> None:
    r = request("POST", f"/v1/directories/{directory_id}/sync/cancel")
    console.print(r["outcome"], soft_wrap=True)
    deadline = time.monotonic() + timeout
    with console.status("waiting for the pass to stop…"):
        while (status := request("GET", f"/v1/directories/{directory_id}/sync"))["workflow_status"] == "RUNNING":
            if time.monotonic() > deadline:
                err.print("[yellow]still stopping; follow it with `dirhook directories show`[/yellow]")
                raise typer.Exit(2)
            time.sleep(0.5)
    console.print(f"sync of {directory_id}: {status['workflow_status']}")


def follow(directory_id: str, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shows the pass's progress until it ends; (its status, its run)."""
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task("starting", total=None)
        while True:
            status = request("GET", f"/v1/directories/{directory_id}/sync")
            p = status.get("progress") or {}
            progress.update(
                task,
                description=f"{status.get('state') or 'starting'}: {p.get('stage', '…')} — "
                f"{p.get('users_read', 0)} users read "
                f"({p.get('users_written', 0)} written), "
                f"{p.get('groups_read', 0)} groups read, {p.get('events', 0)} events"
                + (f" — resumed after {p['resumed_after_users']} users" if p.get("resumed_after_users") else ""),
            )
            run = status.get("last_run") or {}
            if status.get("workflow_status") not in (None, "RUNNING") and run.get("workflow_id"):
                break
            if status.get("state") == SyncState.AWAITING_APPROVAL:
                progress.stop()
                err.print(
                    f"[yellow]{status.get('error')}[/yellow]\n"
                    f"look: dirhook directories deletions {directory_id}\n"
                    f"then: dirhook directories deletions {directory_id} --approve (or --reject)"
                )
                raise typer.Exit(3)
            if time.monotonic() > deadline:
                err.print("[yellow]still running; follow it with `dirhook directories show`[/yellow]")
                raise typer.Exit(2)
            time.sleep(0.5)
    return status, run


def finish(status: dict[str, Any], run: dict[str, Any]) -> None:
    if status["workflow_status"] == "CANCELED":
        err.print(f"[yellow]sync cancelled[/yellow]: {run.get('error') or 'by an operator'}")
        raise typer.Exit(1)
    if status["state"] == SyncState.FAILED:
        err.print(f"[red]sync failed[/red]: {status.get('error') or run.get('error')}")
        raise typer.Exit(1) from None
    counts = run.get("counts") or {}
    console.print(
        f"[green]sync completed[/green]: {counts.get('users_read', 0)} users, "
        f"{counts.get('groups_read', 0)} groups read, {counts.get('users_written', 0)} users written; "
        f"events: {json.dumps(counts.get('events', {}))}"
    )
