"""The `metaserver` command: `metaserver serve [flags]` runs the gRPC server.

Flags override the TOML file given with --config. Every failure to start is one line
on stderr and a non-zero exit status, never a traceback or a usage screen.
"""

from __future__ import annotations

import logging
import sys

import typer

from metaserver import __version__
from metaserver.service import ConfigError, load_config, serve

EXIT_USAGE = 2

app = typer.Typer(add_completion=False,
                  help="Transactional metadata engine for distributed file systems.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"metaserver {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True,
                                       callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Transactional metadata engine for distributed file systems."""


@app.command("serve")
def serve_command(
    meta_url: str | None = typer.Option(
        None, "--meta-url", help="Engine URL, e.g. rocksdb:///var/lib/metaserver or memory://"),
    listen: str | None = typer.Option(None, "--listen", help="HOST:PORT to serve on."),
    config: str | None = typer.Option(None, "--config", help="TOML file of server settings."),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Data directory of the default RocksDB engine."),
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", help="HOST:PORT to serve Prometheus /metrics on."),
    follow: str | None = typer.Option(
        None, "--follow", help="HOST:PORT of a primary: serve as its read-only follower "
        "(writes are forwarded to it)."),
) -> None:
    """Serve the metadata API over gRPC until SIGTERM or SIGINT."""
    try:
        server_config = load_config(config, meta_url=meta_url, listen=listen, data_dir=data_dir,
                                    metrics_listen=metrics_listen, follow=follow)
    except ConfigError as exc:
        typer.echo(f"metaserver: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(serve(server_config))


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:     # usage errors: one line instead of a screen
        typer.echo(f"metaserver: {exc.format_message()} (see metaserver --help)", err=True)
        code = exc.exit_code
    except typer.Abort:
        code = 1
    sys.exit(code or 0)
