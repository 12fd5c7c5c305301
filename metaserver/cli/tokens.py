"""`metactl token create/list/revoke`: manage the bearer tokens of a token store, the file
a server reads with --token-store (it notices changes within a second).

The token itself is printed once, by create; the store keeps only its hash.
"""

from __future__ import annotations

import typer

from metaserver.service.auth import Role, TokenFileError, create_token, read_tokens, revoke_token

STORE_ENV = "METASERVER_TOKEN_STORE"

token_app = typer.Typer(rich_markup_mode=None,
                        help="Bearer tokens of a token store (serve --token-store).")


def _store_option():
    return typer.Option(..., "--store", envvar=STORE_ENV, metavar="FILE",
                        help="The token store (created by the first `create`).")


def _fail(reason: str) -> None:
    typer.echo(f"metactl: {reason}", err=True)
    raise typer.Exit(1)


def _roles(values: list[str]) -> list[Role]:
    try:
        return [Role(v) for v in values]
    except ValueError:
        _fail(f"--role must be one of {', '.join(r.value for r in Role)}, not "
              f"{', '.join(values)}")


@token_app.command("create")
def create(store: str = _store_option(),
           role: list[str] = typer.Option(..., "--role", metavar="ROLE",
                                          help="read, write, replication or admin; repeat "
                                          "for several."),
           name: str = typer.Option("", "--name", metavar="TEXT",
                                     help="Who or what the token is for.")):
    """Make a token; prints `TOKEN` on standard output (only this once) and its id on
    standard error."""
    roles = _roles(role)
    try:
        record, token = create_token(store, roles, name)
    except TokenFileError as exc:
        _fail(str(exc))
    typer.echo(f"created token {record.id} ({','.join(record.roles)})", err=True)
    typer.echo(token)


@token_app.command("list")
def list_tokens(store: str = _store_option()):
    """One line per token: id, roles, created, name (never the token)."""
    try:
        records = read_tokens(store)
    except TokenFileError as exc:
        _fail(str(exc))
    for r in records.values():
        typer.echo(f"{r.id}  {','.join(r.roles):<16} {r.created}  {r.name}")


@token_app.command("revoke")
def revoke(token_id: str = typer.Argument(..., metavar="ID"), store: str = _store_option()):
    """Remove a token: servers refuse it within a second."""
    try:
        record = revoke_token(store, token_id)
    except TokenFileError as exc:
        _fail(str(exc))
    typer.echo(f"revoked token {record.id} ({record.name})")
