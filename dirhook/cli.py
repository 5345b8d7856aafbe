"""The ``dirhook`` command (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dirhook.config import Settings

app = typer.Typer(help="dirhook: directory sync delivered as signed webhooks.", no_args_is_help=True)
directories_app = typer.Typer(help="Connect and inspect directories.", no_args_is_help=True)
endpoints_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)
app.add_typer(directories_app, name="directories")
app.add_typer(endpoints_app, name="endpoints")
roles_app = typer.Typer(help="Roles that group membership grants.", no_args_is_help=True)
app.add_typer(roles_app, name="roles")
orgs_app = typer.Typer(help="Organizations and their API keys.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")

console = Console()
err = Console(stderr=True)


def _table(*columns: str) -> Table:
    """IDs are what people copy from these tables: never truncate them."""
    table = Table()
    for name in columns:
        if name in ("id", "delivery", "event"):
            table.add_column(name, no_wrap=True, min_width=30 if name != "delivery" else 8)
        else:
            table.add_column(name, overflow="fold")
    return table


# -- talking to the API --------------------------------------------------------------------------
class ApiError(Exception):
    pass


def _api() -> httpx.Client:
    settings = Settings()
    base = os.environ.get("DIRHOOK_API_URL", settings.api_url)
    # DIRHOOK_API_KEY: an organization's key, for someone who may see that organization only.
    token = os.environ.get("DIRHOOK_API_KEY") or settings.resolved_admin_token
    return httpx.Client(base_url=base, timeout=30, headers={"authorization": f"Bearer {token}"})


def _call(method: str, path: str, **kw) -> Any:
    with _api() as client:
        try:
            resp = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the dirhook API at {client.base_url}: {exc} (is `dirhook dev` running?)") from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        raise ApiError(f"{resp.status_code}: {detail}")
    return resp.json() if resp.content else None


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ApiError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from None


# -- processes --------------------------------------------------------------------------------
@app.command()
def dev() -> None:
    """Run the embedded stack: Temporal dev server + UI, a worker and the API, on SQLite."""
    from dirhook.devstack import DevStack

    raise typer.Exit(DevStack(Settings(), out=lambda m: console.print(m, soft_wrap=True)).run())


@app.command()
def worker(queues: str = typer.Option("sync,delivery", help="task queues to serve: sync, delivery or both")) -> None:
    """Run a worker (as `python -m workers`)."""
    from workers import run_workers

    settings = Settings()
    from dirhook.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_workers(settings, [q.strip() for q in queues.split(",") if q.strip()]))


@app.command()
def api(host: Optional[str] = None, port: Optional[int] = None) -> None:
    """Run the HTTP API."""
    import uvicorn

    from dirhook.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # log_config=None: uvicorn's loggers go through ours (JSON lines, secrets masked);
    # access logs stay off (one line per request is the proxy's job).
    uvicorn.run("dirhook.api.app:create_app", factory=True, host=host or settings.api_host,
                port=port or settings.api_port, log_config=None, access_log=False)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from dirhook.db.engine import migrate as run_migrate

    settings = Settings()
    settings.ensure_data_dir()
    run_migrate(settings.sqlalchemy_url)
    console.print("database is up to date")


@app.command()
def setup() -> None:
    """Prepare a deployment: database migrations, and dirhook's search attributes on the Temporal cluster."""
    from dirhook import temporal as t
    from dirhook.db.engine import migrate as run_migrate

    settings = Settings()
    settings.ensure_data_dir()
    run_migrate(settings.sqlalchemy_url)

    async def register() -> None:
        client = await t.connect(settings)
        await t.register_search_attributes(client, settings.temporal_namespace)

    asyncio.run(register())
    console.print("database migrated; search attributes registered")


@app.command()
def receiver(secret: str = typer.Option(..., envvar="DIRHOOK_RECEIVER_SECRET", help="the endpoint's whsec_ secret"),
             port: int = typer.Option(9000), host: str = typer.Option("127.0.0.1")) -> None:
    """A tiny webhook receiver that verifies signatures and prints each event."""
    from aiohttp import web

    from dirhook.receiver import make_receiver_app, print_event
    from dirhook.signing import is_valid_secret

    if not is_valid_secret(secret):
        err.print("[red]error[/red] --secret / DIRHOOK_RECEIVER_SECRET must be the endpoint's whsec_… secret")
        raise typer.Exit(2)
    console.print(f"receiving on http://{host}:{port}/ (signatures verified; Ctrl-C to stop)")
    web.run_app(make_receiver_app(secret, print_event), host=host, port=port, print=None)


# -- directories --------------------------------------------------------------------------------
@directories_app.command("add-ldap")
def add_ldap(
    name: str = typer.Option(..., help="a name for people"),
    url: str = typer.Option(..., help="ldap://host:port or ldaps://host:port"),
    bind_dn: str = typer.Option(..., help="DN to bind as"),
    bind_password: str = typer.Option(..., envvar="DIRHOOK_LDAP_BIND_PASSWORD", prompt=True, hide_input=True,
                                      help="prompted for when not given (or DIRHOOK_LDAP_BIND_PASSWORD)"),
    user_base_dn: str = typer.Option(...),
    group_base_dn: Optional[str] = typer.Option(None, help="defaults to the user base DN"),
    user_filter: Optional[str] = None,
    group_filter: Optional[str] = None,
    flavour: str = typer.Option("openldap", help="openldap or active_directory"),
    start_tls: bool = False,
    organization_id: Optional[str] = None,
) -> None:
    """Connect an LDAP or Active Directory directory."""
    ldap: dict[str, Any] = {"url": url, "bind_dn": bind_dn, "user_base_dn": user_base_dn, "flavour": flavour,
                            "start_tls": start_tls}
    if group_base_dn:
        ldap["group_base_dn"] = group_base_dn
    if user_filter:
        ldap["user_filter"] = user_filter
    if group_filter:
        ldap["group_filter"] = group_filter
    body = {"name": name, "ldap": ldap, "bind_password": bind_password}
    if organization_id:
        body["organization_id"] = organization_id
    d = _run(_call, "POST", "/v1/directories", json=body)
    console.print(f"directory [bold]{d['id']}[/bold] created; sync it with: dirhook sync {d['id']}", soft_wrap=True)


@directories_app.command("add-entra")
def add_entra(
    name: str = typer.Option(..., help="a name for people"),
    tenant_id: str = typer.Option(..., help="the directory (tenant) ID or primary domain"),
    client_id: str = typer.Option(..., help="the app registration's application (client) ID"),
    client_secret: Optional[str] = typer.Option(None, envvar="DIRHOOK_ENTRA_CLIENT_SECRET",
                                                help="prompted for when neither it nor a certificate is given"),
    certificate_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                    help="PEM with the app certificate's private key, instead of a secret"),
    group_id: list[str] = typer.Option([], "--group-id", help="repeatable: only these groups and their members"),
    authority_host: Optional[str] = typer.Option(None, help="national clouds, e.g. https://login.microsoftonline.us"),
    graph_base_url: Optional[str] = typer.Option(None, help="national clouds, e.g. https://graph.microsoft.us/v1.0"),
    only_enabled: bool = typer.Option(False, "--only-enabled", help="leave out disabled accounts"),
    organization_id: Optional[str] = None,
) -> None:
    """Connect a Microsoft Entra ID tenant (read through Microsoft Graph delta queries). The app
    needs the application permissions User.Read.All and GroupMember.Read.All."""
    entra: dict[str, Any] = {"tenant_id": tenant_id, "client_id": client_id, "only_enabled": only_enabled,
                             "group_ids": group_id}
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
    d = _run(_call, "POST", "/v1/directories", json=body)
    console.print(f"directory [bold]{d['id']}[/bold] created; sync it with: dirhook sync {d['id']} --full",
                  soft_wrap=True)


@directories_app.command("add-scim")
def add_scim(name: str = typer.Option(..., help="a name for people"),
             organization_id: Optional[str] = typer.Option(None, help="default: the default organization")) -> None:
    """Create a SCIM directory: prints the tenant URL and bearer token to give the IdP (shown once)."""
    body: dict[str, Any] = {"name": name, "provider": "scim"}
    if organization_id:
        body["organization_id"] = organization_id
    d = _run(_call, "POST", "/v1/directories", json=body)
    console.print(f"SCIM directory {d['id']} created. Give your identity provider (shown once):")
    console.print(f"  tenant URL    {d['scim_base_url']}", highlight=False)
    console.print(f"  bearer token  {d['scim_token']}", soft_wrap=True, highlight=False)


@directories_app.command("rotate-scim-token")
def rotate_scim_token(directory_id: str) -> None:
    """A new SCIM bearer token (shown once); the old one stops working at once."""
    r = _run(_call, "POST", f"/v1/directories/{directory_id}/scim-token")
    console.print(f"new bearer token for {r['scim_base_url']} (the previous one no longer works):")
    console.print(r["scim_token"], soft_wrap=True, highlight=False)


@directories_app.command("list")
def list_directories() -> None:
    rows = _run(_call, "GET", "/v1/directories")
    table = _table("id", "name", "provider", "url", "organization")
    for d in rows:
        table.add_row(d["id"], d["name"], d["provider"], d["config"].get("url", ""), d["organization_id"])
    console.print(table)


@directories_app.command("show")
def show_directory(directory_id: str) -> None:
    d = _run(_call, "GET", f"/v1/directories/{directory_id}")
    status = _run(_call, "GET", f"/v1/directories/{directory_id}/sync")
    console.print_json(json.dumps({"directory": d, "sync": status}))


@directories_app.command("delete")
def delete_directory(directory_id: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    if not yes:
        typer.confirm(f"delete {directory_id} with its users, groups and events?", abort=True)
    _run(_call, "DELETE", f"/v1/directories/{directory_id}")
    console.print(f"deleted {directory_id}")


@directories_app.command("users")
def list_users(directory_id: str, limit: int = 100) -> None:
    page = _run(_call, "GET", f"/v1/directories/{directory_id}/users", params={"limit": limit})
    table = _table("id", "username", "name", "active", "groups")
    for u in page["data"]:
        table.add_row(u["id"], u.get("username") or "", u.get("display_name") or "", str(u["active"]),
                      ", ".join(g["name"] for g in u["groups"]))
    console.print(table)


@directories_app.command("schedule")
def schedule(directory_id: str, pause: bool = typer.Option(False, "--pause"), resume: bool = typer.Option(False, "--resume"),
             interval: Optional[int] = typer.Option(None, help="seconds between incremental passes; 0 removes it")) -> None:
    """Show, pause, resume or change the directory's schedule of incremental passes."""
    if pause and resume:
        err.print("[red]error[/red] --pause or --resume, not both")
        raise typer.Exit(2)
    if interval is not None:
        _run(_call, "PATCH", f"/v1/directories/{directory_id}", json={"sync_interval_seconds": interval})
    if pause or resume:
        _run(_call, "POST", f"/v1/directories/{directory_id}/schedule/{'pause' if pause else 'resume'}")
    sc = _run(_call, "GET", f"/v1/directories/{directory_id}/schedule")
    if not sc["interval_seconds"]:
        console.print("no schedule: passes run only when requested")
        return
    console.print(f"every {sc['interval_seconds']} s, {'paused' if sc['paused'] else 'active'}; "
                  f"next: {', '.join(sc['next_runs']) or '-'}", soft_wrap=True)


@directories_app.command("deletions")
def deletions(directory_id: str, approve: bool = typer.Option(False, "--approve", help="delete them now"),
              reject: bool = typer.Option(False, "--reject", help="keep the objects")) -> None:
    """Deletions a pass held back (over the deletion threshold): show them, approve or reject."""
    if approve and reject:
        err.print("[red]error[/red] --approve or --reject, not both")
        raise typer.Exit(2)
    if approve or reject:
        r = _run(_call, "POST", f"/v1/directories/{directory_id}/deletions/{'approve' if approve else 'reject'}")
        console.print(r["outcome"])
        return
    held = _run(_call, "GET", f"/v1/directories/{directory_id}/deletions")
    state = "awaiting approval" if held["awaiting_approval"] else "nothing awaits approval"
    console.print(f"{state}: {held['users']} users and {held['groups']} groups held")
    for obj in held["sample"]:
        console.print(f"  {obj['object']} {obj['id']} {obj.get('username') or obj.get('name') or ''}")


@directories_app.command("map-role")
def map_role(directory_id: str, role: str = typer.Argument(..., help="the role's slug"),
             group_name: Optional[str] = typer.Option(None, help="group name, exact or a glob like 'eng-*'"),
             group_id: Optional[str] = typer.Option(None, help="the group's external id (entryUUID / objectGUID)")) -> None:
    """Members of matching groups (directly or through nesting) get the role; applied at once."""
    if (group_name is None) == (group_id is None):
        err.print("[red]error[/red] give exactly one of --group-name and --group-id")
        raise typer.Exit(2)
    body = {"role": role, "match": "name" if group_name else "external_id", "pattern": group_name or group_id}
    m = _run(_call, "POST", f"/v1/directories/{directory_id}/role-mappings", json=body)
    console.print(f"mapping {m['id']}: {m['match']} {m['pattern']!r} -> {m['role']}")


@directories_app.command("role-mappings")
def list_role_mappings(directory_id: str) -> None:
    """The directory's group -> role mappings."""
    table = _table("id", "role", "match", "pattern")
    for m in _run(_call, "GET", f"/v1/directories/{directory_id}/role-mappings"):
        table.add_row(m["id"], m["role"], m["match"], m["pattern"])
    console.print(table)


@directories_app.command("unmap-role")
def unmap_role(directory_id: str, mapping_id: str) -> None:
    """Remove a mapping; users lose the role at once."""
    _run(_call, "DELETE", f"/v1/directories/{directory_id}/role-mappings/{mapping_id}")
    console.print(f"mapping {mapping_id} removed")


@roles_app.command("add")
def add_role(slug: str, name: Optional[str] = None, priority: int = typer.Option(0, help="higher wins `role`"),
             default: bool = typer.Option(False, "--default", help="for users no mapping gives a role"),
             description: Optional[str] = None, organization_id: Optional[str] = None) -> None:
    """Create a role (its slug is what receivers get in `roles`)."""
    body: dict[str, Any] = {"slug": slug, "name": name or slug, "priority": priority, "is_default": default}
    if description:
        body["description"] = description
    if organization_id:
        body["organization_id"] = organization_id
    r = _run(_call, "POST", "/v1/roles", json=body)
    console.print(f"role {r['id']} ({r['slug']}) created")


@roles_app.command("list")
def list_roles(organization_id: Optional[str] = None) -> None:
    """Roles, highest priority first."""
    table = _table("id", "slug", "name", "priority", "default")
    params = {"organization_id": organization_id} if organization_id else {}
    for r in _run(_call, "GET", "/v1/roles", params=params):
        table.add_row(r["id"], r["slug"], r["name"], str(r["priority"]), "yes" if r["is_default"] else "")
    console.print(table)


@roles_app.command("delete")
def delete_role(role_id: str) -> None:
    """Delete a role and its mappings; users who had it are updated at once."""
    _run(_call, "DELETE", f"/v1/roles/{role_id}")
    console.print(f"role {role_id} deleted")


# -- organizations ------------------------------------------------------------------------------
@orgs_app.command("add")
def add_organization(name: str) -> None:
    """Create an organization (admin token only)."""
    r = _run(_call, "POST", "/v1/organizations", json={"name": name})
    console.print(f"organization {r['id']} ({r['name']}) created")


@orgs_app.command("list")
def list_organizations() -> None:
    table = _table("id", "name", "created")
    for o in _run(_call, "GET", "/v1/organizations"):
        table.add_row(o["id"], o["name"], o["created_at"])
    console.print(table)


@orgs_app.command("add-key")
def add_api_key(organization_id: str, name: str = typer.Option(..., help="what the key is for")) -> None:
    """Create an API key that sees this organization only. Printed once; keep it."""
    r = _run(_call, "POST", f"/v1/organizations/{organization_id}/api-keys", json={"name": name})
    console.print(f"API key {r['id']} created for {r['organization_id']}. It is shown this once:")
    console.print(r["key"], soft_wrap=True, highlight=False)


@orgs_app.command("keys")
def list_api_keys(organization_id: str) -> None:
    table = _table("id", "name", "created", "last used", "revoked")
    for k in _run(_call, "GET", f"/v1/organizations/{organization_id}/api-keys"):
        table.add_row(k["id"], k["name"], k["created_at"], k["last_used_at"] or "", k["revoked_at"] or "")
    console.print(table)


@orgs_app.command("revoke-key")
def revoke_api_key(organization_id: str, key_id: str) -> None:
    """Revoke at once: the next request with the key gets 401."""
    _run(_call, "DELETE", f"/v1/organizations/{organization_id}/api-keys/{key_id}")
    console.print(f"API key {key_id} revoked")


# -- sync -----------------------------------------------------------------------------------------
@app.command()
def sync(directory_id: str, full: bool = typer.Option(False, "--full", help="full listing instead of changes"),
         wait: bool = typer.Option(True, help="wait for the pass and show its progress"),
         timeout: float = typer.Option(3600, help="seconds to wait at most")) -> None:
    """Sync a directory now (queued behind a running pass, never overlapping it)."""
    started = _run(_call, "POST", f"/v1/directories/{directory_id}/sync",
                   params={"mode": "full" if full else "incremental"})
    console.print(f"workflow [bold]{started['workflow_id']}[/bold] ({started['mode']})  {started.get('temporal_ui_url') or ''}", soft_wrap=True)
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("starting", total=None)
        while True:
            status = _run(_call, "GET", f"/v1/directories/{directory_id}/sync")
            p = status.get("progress") or {}
            progress.update(task, description=f"{status.get('state') or 'starting'}: {p.get('stage', '…')} — "
                                              f"{p.get('users_read', 0)} users read "
                                              f"({p.get('users_written', 0)} written), "
                                              f"{p.get('groups_read', 0)} groups read, {p.get('events', 0)} events"
                                              + (f" — resumed after {p['resumed_after_users']} users"
                                                 if p.get("resumed_after_users") else ""))
            run = status.get("last_run") or {}
            if status.get("workflow_status") not in (None, "RUNNING") and run.get("workflow_id"):
                break
            if status.get("state") == "awaiting_approval":
                progress.stop()
                err.print(f"[yellow]{status.get('error')}[/yellow]\n"
                          f"look: dirhook directories deletions {directory_id}\n"
                          f"then: dirhook directories deletions {directory_id} --approve (or --reject)")
                raise typer.Exit(3)
            if time.monotonic() > deadline:
                err.print("[yellow]still running; follow it with `dirhook directories show`[/yellow]")
                raise typer.Exit(2)
            time.sleep(0.5)
    if status["state"] == "failed":
        err.print(f"[red]sync failed[/red]: {status.get('error') or run.get('error')}")
        raise typer.Exit(1) from None
    counts = run.get("counts") or {}
    console.print(f"[green]sync completed[/green]: {counts.get('users_read', 0)} users, "
                  f"{counts.get('groups_read', 0)} groups read, {counts.get('users_written', 0)} users written; "
                  f"events: {json.dumps(counts.get('events', {}))}")


# -- endpoints and events ---------------------------------------------------------------------
@endpoints_app.command("add")
def add_endpoint(url: str, event_type: list[str] = typer.Option([], "--event-type", help="repeatable; wildcards ok"),
                 directory: list[str] = typer.Option([], "--directory", help="repeatable; default: all of the organization"),
                 description: Optional[str] = None, organization_id: Optional[str] = None,
                 rate_limit: Optional[float] = typer.Option(None, help="messages per second at most"),
                 max_concurrency: Optional[int] = typer.Option(None, help="requests in flight at most"),
                 max_payload_bytes: Optional[int] = None,
                 timeout: Optional[float] = typer.Option(None, help="seconds for a 2xx (default 15)"),
                 fifo: bool = typer.Option(False, "--fifo", help="strict order per directory"),
                 retry_schedule: Optional[str] = typer.Option(None, help="comma-separated waits in seconds")) -> None:
    """Subscribe a URL; prints its signing secret once."""
    body: dict[str, Any] = {"url": url, "fifo": fifo}
    optional = {"event_types": event_type or None, "directory_ids": directory or None, "description": description,
                "organization_id": organization_id, "rate_limit_per_second": rate_limit,
                "max_concurrency": max_concurrency, "max_payload_bytes": max_payload_bytes, "timeout_seconds": timeout,
                "retry_schedule": [float(x) for x in retry_schedule.split(",")] if retry_schedule else None}
    body.update({k: v for k, v in optional.items() if v is not None})
    e = _run(_call, "POST", "/v1/endpoints", json=body)
    console.print(f"endpoint [bold]{e['id']}[/bold] -> {e['url']}")
    console.print(f"signing secret (shown once): [bold]{e['secret']}[/bold]")


@endpoints_app.command("list")
def list_endpoints() -> None:
    table = _table("id", "url", "enabled", "health", "event types")
    for e in _run(_call, "GET", "/v1/endpoints"):
        table.add_row(e["id"], e["url"], str(e["enabled"]), e["health"].replace("_", " "),
                      ", ".join(e["event_types"] or ["*"]))
    console.print(table)


@endpoints_app.command("show")
def show_endpoint(endpoint_id: str) -> None:
    """An endpoint's settings, health (circuit breaker) and deliveries by status."""
    e = _run(_call, "GET", f"/v1/endpoints/{endpoint_id}")
    console.print(f"[bold]{e['id']}[/bold] -> {e['url']}  ({'enabled' if e['enabled'] else 'disabled'})")
    if not e["enabled"]:
        console.print(f"disabled: {e['disabled_reason']}")
    health = e["health"].replace("_", " ")
    if e["health"] == "circuit_open":
        health += f" since {e['breaker_opened_at']}, next probe {e['next_probe_at'] or 'with the next event'}"
    elif e["health"] == "failing":
        health += f" since {e['failing_since']}"
    console.print(f"health: {health}; {e['consecutive_failures']} failed attempts since the last success "
                  f"({e['last_success_at'] or 'none yet'})")
    counts = e.get("delivery_counts") or {}
    console.print("deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))


@endpoints_app.command("disable")
def disable_endpoint(endpoint_id: str, reason: str = "disabled by an operator") -> None:
    """Stop delivering; new events are kept for a later `recover`."""
    e = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/disable", json={"reason": reason})
    console.print(f"{e['id']} disabled: {e['disabled_reason']}")


@endpoints_app.command("enable")
def enable_endpoint(endpoint_id: str) -> None:
    """Resume delivering pending events."""
    e = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/enable")
    console.print(f"{e['id']} enabled")


@endpoints_app.command("rotate-secret")
def rotate_secret(endpoint_id: str, overlap_seconds: Optional[float] = typer.Option(
        None, help="how long the old secret keeps signing (default 24 h)")) -> None:
    """New signing secret (shown once); both sign until the overlap ends."""
    body = {"overlap_seconds": overlap_seconds} if overlap_seconds is not None else {}
    r = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/rotate-secret", json=body)
    console.print(f"new signing secret (shown once): [bold]{r['secret']}[/bold]")
    console.print(f"the old secret keeps signing until {r['previous_secret_expires_at']}")


@endpoints_app.command("recover")
def recover(endpoint_id: str, since: str = typer.Option(..., help="ISO time, e.g. 2026-11-28T00:00:00Z")) -> None:
    """Requeue every delivery created since a time that has not succeeded, to be sent now."""
    r = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/recover", json={"since": since})
    console.print(f"{r['requeued']} deliveries requeued")


@endpoints_app.command("replay")
def replay(endpoint_id: str, directory: str = typer.Option(..., "--directory"),
           since_sequence: Optional[int] = None, since: Optional[str] = None) -> None:
    """Send a directory's events again since a sequence or a time (same webhook-ids)."""
    body: dict[str, Any] = {"directory_id": directory}
    if since_sequence is not None:
        body["since_sequence"] = since_sequence
    if since:
        body["since"] = since
    r = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/replay", json=body)
    console.print(f"{r['requeued']} events queued")


@endpoints_app.command("resend")
def resend(endpoint_id: str, delivery_id: int) -> None:
    """Send one delivery again."""
    d = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/resend")
    console.print(f"delivery {d['id']} ({d['event_id']}) requeued")


@endpoints_app.command("skip")
def skip(endpoint_id: str, delivery_id: int) -> None:
    """Give up on one delivery (unblocks a FIFO endpoint); it stays recoverable."""
    d = _run(_call, "POST", f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/skip")
    console.print(f"delivery {d['id']} ({d['event_id']}) skipped")


@endpoints_app.command("deliveries")
def list_deliveries(endpoint_id: str, status: Optional[str] = None, limit: int = 50) -> None:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = _run(_call, "GET", f"/v1/endpoints/{endpoint_id}/deliveries", params=params)
    table = _table("delivery", "event", "type", "status", "attempts", "last", "next attempt")
    for d in page["data"]:
        table.add_row(str(d["id"]), d["event_id"], d["event_type"], d["status"], str(d["attempts"]),
                      str(d["last_status_code"] or d["last_error"] or ""), d["next_attempt_at"] or "")
    console.print(table)


@app.command()
def events(directory_id: Optional[str] = typer.Option(None, "--directory"),
           follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new events"),
           as_json: bool = typer.Option(False, "--json", help="one JSON envelope per line"),
           after: Optional[str] = None, limit: int = 100) -> None:
    """Print events, oldest first."""
    from dirhook.receiver import print_event

    cursor = after
    try:
        while True:
            params: dict[str, Any] = {"limit": limit}
            if directory_id:
                params["directory_id"] = directory_id
            if cursor:
                params["after"] = cursor
            page = _run(_call, "GET", "/v1/events", params=params)
            for event in page["data"]:
                if as_json:
                    sys.stdout.write(json.dumps(event) + "\n")
                else:
                    print_event(event, {})
            sys.stdout.flush()
            cursor = page["next_cursor"] or cursor
            if page["has_more"]:
                continue
            if not follow:
                return
            time.sleep(1)
    except KeyboardInterrupt:
        return


def main() -> None:
    app()


if __name__ == "__main__":
    main()
