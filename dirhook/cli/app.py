"""The root ``dirhook`` command; each module of this package adds its commands to it."""

from typing import Any

import typer
from typer.core import TyperOption

app = typer.Typer(help="dirhook: directory sync delivered as signed webhooks.", no_args_is_help=True)

_display_type_rich = TyperOption.display_type_rich


def _no_type_for_flags(self: TyperOption, ctx: Any) -> str | None:
    # typer's help prints each option's type, `<bool>` after every flag too (--yes, --help),
    # though a flag takes no value: people typed `--yes true`. Typer has no setting for it.
    if self.is_flag:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_type_for_flags  # type: ignore[method-assign]
