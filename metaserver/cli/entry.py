"""What the three commands (metaserver, metactl, metafs) share at their edges: a
`--version` option, and running the typer app so that a usage error is one line and the
command's exit code is the process status."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from metaserver import __version__


def version_option(prog: str):
    """A `--version` option for an app's callback: prints `prog VERSION` and exits."""
    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()
    return typer.Option(False, "--version", is_eager=True, callback=show,
                        help="Print the version and exit.")


def run(app: typer.Typer, prog: str) -> NoReturn:
    """Run `app` as `prog` and exit with its status."""
    try:
        code = app(prog_name=prog, standalone_mode=False)
    except typer.TyperException as exc:     # usage errors: one line instead of a screen
        typer.echo(f"{prog}: {exc.format_message()} (see {prog} --help)", err=True)
        code = exc.exit_code
    except typer.Abort:
        code = 1
    sys.exit(code or 0)
