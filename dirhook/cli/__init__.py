"""The ``dirhook`` command (typer + rich), one module per resource."""

from dirhook.cli import directories, endpoints, organizations, processes, roles, secrets  # noqa: F401  (they add their commands)
from dirhook.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
