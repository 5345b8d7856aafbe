"""The root ``dirhook`` command; each module of this package adds its commands to it."""

import typer

app = typer.Typer(help="dirhook: directory sync delivered as signed webhooks.", no_args_is_help=True)
