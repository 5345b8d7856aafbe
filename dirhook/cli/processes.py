"""`dirhook dev | worker | api | migrate | setup | receiver`: the processes dirhook runs as."""

from __future__ import annotations

import asyncio

import typer

from dirhook.cli.app import app
from dirhook.cli.common import console, err
from dirhook.config import Settings


@app.command()
def dev() -> None:
    """Run the embedded stack: Temporal dev server + UI, a worker and the API, on SQLite."""
    from dirhook.devstack import DevStack

    raise typer.Exit(DevStack(Settings(), out=lambda m: console.print(m, soft_wrap=True, highlight=False)).run())


@app.command()
def worker(queues: str = typer.Option("sync,delivery", help="task queues to serve: sync, delivery or both")) -> None:
    """Run a worker (as `python -m workers`)."""
    from workers import run_workers

    settings = Settings()
    from dirhook.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    from dirhook.db.secrets import SecretsLocked
    from dirhook.temporal import TemporalTLSError

    try:
        asyncio.run(run_workers(settings, [q.strip() for q in queues.split(",") if q.strip()]))
    except (SecretsLocked, TemporalTLSError) as exc:
        err.print(f"[red]error[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """Run the HTTP API."""
    import uvicorn

    from dirhook.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    from dirhook.api.app import create_app
    from dirhook.db.engine import SchemaBehind
    from dirhook.db.secrets import SecretsLocked
    from dirhook.temporal import TemporalTLSError

    try:  # the app checks the database's schema, secrets and Temporal TLS files as it is made
        application = create_app(settings)
    except (SchemaBehind, SecretsLocked, TemporalTLSError) as exc:
        err.print(f"[red]error[/red] {exc}", soft_wrap=True)  # one line: a path or URL stays whole
        raise typer.Exit(2) from None
    # log_config=None: uvicorn's loggers go through ours (JSON lines, secrets masked);
    # access logs stay off (one line per request is the proxy's job).
    uvicorn.run(
        application,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
        access_log=False,
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = Settings()
    _migrate(settings)
    console.print("database is up to date")


def _migrate(settings: Settings) -> None:
    """Migrations, then the secrets still in clear sealed with the keyring (if one is set)."""
    from dirhook.db.engine import migrate as run_migrate
    from dirhook.keyring import load_keyring

    settings.ensure_data_dir()
    keyring = load_keyring(settings)
    sealed = sum(run_migrate(settings.sqlalchemy_url, keyring).values())
    if keyring is None:
        err.print("[yellow]no keyring (DIRHOOK_ENCRYPTION_KEYS): secrets are stored in clear[/yellow]")
    elif sealed:
        console.print(f"{sealed} secrets stored in clear are now sealed under key {keyring.active!r}")


@app.command()
def setup() -> None:
    """Prepare a deployment: database migrations, and dirhook's search attributes on the Temporal cluster."""
    from dirhook import temporal as t

    settings = Settings()
    _migrate(settings)

    async def register() -> None:
        client = await t.connect(settings)
        await t.register_search_attributes(client, settings.temporal_namespace)

    asyncio.run(register())
    console.print("database migrated; search attributes registered")


@app.command()
def receiver(
    secret: str = typer.Option(..., envvar="DIRHOOK_RECEIVER_SECRET", help="the endpoint's whsec_ secret"),
    port: int = typer.Option(9000),
    host: str = typer.Option("127.0.0.1"),
) -> None:
    """A tiny webhook receiver that verifies signatures and prints each event."""
    from aiohttp import web

    from dirhook.receiver import make_receiver_app, print_event, print_refusal
    from dirhook.signing import is_valid_secret

    if not is_valid_secret(secret):
        err.print("[red]error[/red] --secret / DIRHOOK_RECEIVER_SECRET must be the endpoint's whsec_… secret")
        raise typer.Exit(2)
    console.print(f"receiving on http://{host}:{port}/ (signatures verified; Ctrl-C to stop)")
    web.run_app(make_receiver_app(secret, print_event, print_refusal), host=host, port=port, print=None)
