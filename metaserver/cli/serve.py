"""The `metaserver` command: `metaserver format` makes a new namespace at an engine URL,
once; `metaserver serve [flags]` runs the gRPC server on a formatted one.

Flags override the TOML file given with --config, which overrides METASERVER_META_URL.
Every failure is one line on stderr and a non-zero exit status, never a traceback or a
usage screen.
"""

from __future__ import annotations

import logging
import sys

import typer
from pythonjsonlogger.json import JsonFormatter

from engines import is_ephemeral, open_engine, redact_url
from engines.contract import EngineError
from metaserver.cli import entry
from metaserver.errors import FsError
from metaserver.runner import format_namespace
from metaserver.service import ConfigError, ServerConfig, load_config, serve

EXIT_FAILED = 1
EXIT_USAGE = 2
TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

app = typer.Typer(add_completion=False, rich_markup_mode=None,
                  help="Transactional metadata engine for distributed file systems.")



@app.callback()
def _root(version: bool = entry.version_option("metaserver")) -> None:
    """Transactional metadata engine for distributed file systems."""


def _meta_url_option():
    return typer.Option(None, "--meta-url", metavar="URL",
                        help="Engine URL, e.g. rocksdb:///var/lib/metaserver or memory:// "
                        "(default: $METASERVER_META_URL, else rocksdb://DATA_DIR).")


def _config_option():
    return typer.Option(None, "--config", metavar="FILE",
                        help="TOML file of server settings; flags override it (default: none).")


def _default(field: str) -> object:
    """The value the server runs with when neither a flag nor the config file sets it."""
    return ServerConfig.model_fields[field].default


def _data_dir_option():
    return typer.Option(None, "--data-dir", metavar="DIR",
                        help="Data directory of the default RocksDB engine "
                        f"(default: {_default('data_dir')}).")


def _configured(path: str | None, **overrides) -> ServerConfig:
    try:
        return load_config(path, **overrides)
    except ConfigError as exc:
        typer.echo(f"metaserver: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@app.command("format")
def format_command(meta_url: str | None = _meta_url_option(),
                   config: str | None = _config_option(),
                   data_dir: str | None = _data_dir_option()) -> None:
    """Make a new, empty namespace at the engine URL, for `metaserver serve`.

    Only an empty store is formatted (a missing one is created): a namespace,
    or any data, already there is refused and left as it is."""
    url = _configured(config, meta_url=meta_url, data_dir=data_dir).meta_url
    shown = redact_url(url)
    if is_ephemeral(url):
        typer.echo(f"metaserver: {shown}: nothing to format: a memory:// namespace lives in "
                   "one process (serve formats it as it starts)", err=True)
        raise typer.Exit(EXIT_FAILED)
    try:
        engine = open_engine(url, create=True)
        try:
            format_namespace(engine)
        finally:
            engine.close()
    except FsError as exc:
        _fail(shown, exc.message)
    except EngineError as exc:
        _fail(shown, str(exc))
    except OSError as exc:
        _fail(shown, exc.strerror or str(exc))
    typer.echo(f"formatted {shown}")


def _fail(what: str, why: str) -> None:
    typer.echo(f"metaserver: {what}: {why}", err=True)
    raise typer.Exit(EXIT_FAILED)


@app.command("serve")
def serve_command(
    meta_url: str | None = _meta_url_option(),
    listen: str | None = typer.Option(None, "--listen", metavar="HOST:PORT",
                                      help=f"HOST:PORT to serve on (default: "
                                      f"{_default('listen')})."),
    config: str | None = _config_option(),
    data_dir: str | None = _data_dir_option(),
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", metavar="HOST:PORT",
        help="HOST:PORT to serve Prometheus /metrics on (default: none, off)."),
    health_listen: str | None = typer.Option(
        None, "--health-listen", metavar="HOST:PORT",
        help="Also serve the gRPC health service alone, in plaintext, here (for probes "
        "that cannot speak TLS, such as the kubelet's; default: none, off)."),
    follow: str | None = typer.Option(
        None, "--follow", metavar="HOST:PORT",
        help="HOST:PORT of a primary: serve as its read-only follower "
        "(writes are forwarded to it; default: none, serve as a primary)."),
    rejoin: bool | None = typer.Option(
        None, "--rejoin/--no-rejoin", help="With --follow: follow even when this node holds "
        "records the primary's history lacks (a former primary after a forced failover); "
        "they are written to a rollback file first (default: --no-rejoin)."),
    rollback_dir: str | None = typer.Option(
        None, "--rollback-dir", metavar="DIR",
        help="Where rollback files go (default: DATA_DIR-rollback)."),
    log_level: str | None = typer.Option(
        None, "--log-level", metavar="LEVEL",
        help="debug, info, warning or error (default: info)."),
    log_format: str | None = typer.Option(
        None, "--log-format", metavar="FORMAT",
        help="text, or json: one JSON object per line (default: text)."),
    access_log_sample: float | None = typer.Option(
        None, "--access-log-sample", metavar="FRACTION",
        help="Log this fraction of calls (method, subject, status, errno, latency, peer, "
        "token id): 1 all, 0.01 one in a hundred (default: 0, off)."),
    tls_cert: str | None = typer.Option(
        None, "--tls-cert", metavar="PEM", help="Serve TLS with this certificate chain."),
    tls_key: str | None = typer.Option(None, "--tls-key", metavar="PEM",
                                       help="The private key of --tls-cert."),
    tls_client_ca: str | None = typer.Option(
        None, "--tls-client-ca", metavar="PEM",
        help="Mutual TLS: require client certificates signed by this CA."),
    token_store: str | None = typer.Option(
        None, "--token-store", metavar="FILE",
        help="Require a bearer token of this store (`metactl token create`) on every call "
        "but health and reflection (default: none, open)."),
    allow_insecure_network: bool | None = typer.Option(
        None, "--allow-insecure-network/--no-allow-insecure-network",
        help="Serve a non-loopback address without TLS and tokens "
        "(default: --no-allow-insecure-network)."),
    follow_token_file: str | None = typer.Option(
        None, "--follow-token-file", metavar="FILE",
        help="With --follow: the file holding the token (replication role) to show the "
        "primary (default: $METASERVER_TOKEN)."),
    follow_tls_ca: str | None = typer.Option(
        None, "--follow-tls-ca", metavar="PEM",
        help="With --follow: reach the primary over TLS, verified with this CA."),
    follow_tls_cert: str | None = typer.Option(
        None, "--follow-tls-cert", metavar="PEM",
        help="With --follow: client certificate for a primary that requires mutual TLS."),
    follow_tls_key: str | None = typer.Option(None, "--follow-tls-key", metavar="PEM",
                                              help="The private key of --follow-tls-cert."),
    client_ops_per_s: float | None = typer.Option(
        None, "--client-ops-per-s", metavar="N",
        help="Calls per second each client (token) may make; 0: no limit (default: 0)."),
    client_max_concurrent: int | None = typer.Option(
        None, "--client-max-concurrent", metavar="N",
        help="Concurrent calls per client; 0: no limit (default: 0)."),
    max_concurrent_calls: int | None = typer.Option(
        None, "--max-concurrent-calls", metavar="N",
        help="Concurrent calls of all clients; 0: no limit (default: 0)."),
) -> None:
    """Serve the metadata API over gRPC until SIGTERM or SIGINT.

    The namespace must have been formatted (`metaserver format`), except for a
    follower, which gets its namespace from the primary, and memory://."""
    server_config = _configured(config, meta_url=meta_url, listen=listen, data_dir=data_dir,
                                metrics_listen=metrics_listen, health_listen=health_listen,
                                follow=follow, rejoin=rejoin,
                                rollback_dir=rollback_dir, tls_cert=tls_cert, tls_key=tls_key,
                                tls_client_ca=tls_client_ca, token_store=token_store,
                                allow_insecure_network=allow_insecure_network,
                                follow_token_file=follow_token_file,
                                follow_tls_ca=follow_tls_ca, follow_tls_cert=follow_tls_cert,
                                follow_tls_key=follow_tls_key,
                                client_ops_per_s=client_ops_per_s,
                                client_max_concurrent=client_max_concurrent,
                                max_concurrent_calls=max_concurrent_calls,
                                log_level=log_level, log_format=log_format,
                                access_log_sample=access_log_sample)
    _configure_logging(server_config.log_level, server_config.log_format)
    raise typer.Exit(serve(server_config))


def _configure_logging(level: str, form: str) -> None:
    """The root logger's one handler, on stderr, in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
                         if form == "json" else logging.Formatter(TEXT_LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=TEXT_LOG_FORMAT)
    entry.run(app, "metaserver")
