"""`dirhook secrets …`: the secrets stored in the database (sealed with the keyring)."""

from __future__ import annotations

import typer

from dirhook.cli.app import app
from dirhook.cli.common import console, err
from dirhook.config import Settings

secrets_app = typer.Typer(help="Secrets stored in the database, sealed with the keyring.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("reencrypt")
def reencrypt() -> None:
    """Seal every stored secret under the active key (DIRHOOK_ENCRYPTION_KEY_ID): after a key
    rotation, before the old key is dropped; or to seal secrets stored before keys were set.
    Runs directly against the database (as `dirhook migrate` does), not through the API."""
    from dirhook.db import secrets
    from dirhook.db.engine import make_engine
    from dirhook.keyring import load_keyring

    settings = Settings()
    keyring = load_keyring(settings)
    if keyring is None:
        err.print("[red]error[/red] no keyring: set DIRHOOK_ENCRYPTION_KEYS (and DIRHOOK_ENCRYPTION_KEY_ID)")
        raise typer.Exit(2)
    engine = make_engine(settings.sqlalchemy_url, keyring)
    try:
        rewritten = secrets.reencrypt(engine, keyring)
        clear = secrets.check_readable(engine)
    except secrets.SecretsLocked as exc:
        err.print(
            f"[red]error[/red] {exc}: configure every key that sealed a secret, then run this again", soft_wrap=True
        )
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    total = sum(rewritten.values())
    detail = ", ".join(f"{n} in {table}" for table, n in rewritten.items() if n)
    console.print(f"{total} secrets sealed under key {keyring.active!r}" + (f" ({detail})" if detail else ""))
    if clear:  # cannot happen after a reencrypt; said rather than assumed
        err.print(f"[yellow]{clear} secrets are still stored in clear[/yellow]")
