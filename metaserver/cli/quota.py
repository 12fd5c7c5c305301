"""`metactl quota set/get/list/delete/check` and `metactl summary`: directory quotas and
du-like tree totals, as JuiceFS users know them (`juicefs quota`, `juicefs summary`).

The server keeps every directory's stats and every quota's usage as the tree changes
(metaserver/ops/quota.py), so `summary` adds up directory stats and `quota get/list`
read the usage, never walking the files; `quota check` walks the tree to compare (and
with --repair fix), like `juicefs quota check --repair`.
"""

from __future__ import annotations

import os

import typer

from metaserver.types import ROOT_INO, Quota, Summary

quota_app = typer.Typer(rich_markup_mode=None, help="Directory quotas (inodes and bytes).")

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def _session(ctx: typer.Context):
    """The command's metactl Session (set up by metactl's root callback)."""
    return ctx.find_root().obj


def _fail(reason: str) -> None:
    typer.echo(f"metactl: {reason}", err=True)
    raise typer.Exit(1)


def _bytes(text: str | None) -> int | None:
    """BYTES, or a number with K, M, G, T or P (binary units; a trailing i or iB too)."""
    if text is None:
        return None
    number = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in _UNITS else ""
    try:
        value = int(number[:len(number) - len(unit)])
    except ValueError:
        _fail(f"--capacity: {text!r} is not a size (e.g. 1048576, 512M, 10G)")
    if value < 0:
        _fail("--capacity cannot be negative")
    return value * _UNITS[unit]


def _human(n: int) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _percent(used: int, limit: int) -> str:
    return f"{100 * used // limit}%" if limit else "-"


def _dir_path(client, ino: int) -> str:
    """A directory's path, found through its parents' entries."""
    names = []
    while ino != ROOT_INO:
        parent = client.getattr(ino).parent
        cursor = b""
        while True:
            page = client.readdir_page(parent, cursor)
            name = next((e.name for e in page.entries if e.ino == ino), None)
            if name is not None or not page.cursor:
                break
            cursor = page.cursor
        names.append(os.fsdecode(name or str(ino).encode()))
        ino = parent
    return "/" + "/".join(reversed(names))


def _quota_table(rows: list[tuple[str, Quota]]) -> None:
    typer.echo(f"{'PATH':<24} {'SIZE':>8} {'USED':>8} {'USE%':>5} {'INODES':>8} {'IUSED':>8} "
               f"{'IUSE%':>5}")
    for path, q in rows:
        typer.echo(f"{path:<24} {_human(q.max_bytes) if q.max_bytes else '-':>8} "
                   f"{_human(q.used_bytes):>8} {_percent(q.used_bytes, q.max_bytes):>5} "
                   f"{q.max_inodes or '-':>8} {q.used_inodes:>8} "
                   f"{_percent(q.used_inodes, q.max_inodes):>5}")


def _path_option():
    return typer.Argument(..., metavar="PATH", help="A directory.")


@quota_app.command("set")
def set_(ctx: typer.Context, path: str = _path_option(),
         inodes: int | None = typer.Option(None, "--inodes", metavar="N", min=0,
                                           help="At most N files and directories below "
                                                "PATH (0: no limit)."),
         capacity: str | None = typer.Option(None, "--capacity", metavar="BYTES",
                                             help="At most BYTES in regular files below PATH, "
                                                  "e.g. 10G (0: no limit).")):
    """Set PATH's limits; a limit not given keeps its current value."""
    if inodes is None and capacity is None:
        _fail("quota set: give --inodes and/or --capacity")
    s = _session(ctx)
    with s.reporting(path):
        ino = s.resolve(path).ino
        try:
            current = s.client.get_quota(ino)
        except FileNotFoundError:
            current = Quota(ino, 0, 0, 0, 0)
        max_bytes = _bytes(capacity)
        q = s.client.set_quota(ino, max_bytes=current.max_bytes if max_bytes is None else max_bytes,
                               max_inodes=current.max_inodes if inodes is None else inodes)
    _quota_table([(path, q)])


def _quota_of(s, path: str) -> Quota:
    """PATH's quota; a directory without one is said so, not "No such file"."""
    with s.reporting(path):
        ino = s.resolve(path).ino
        try:
            return s.client.get_quota(ino)
        except FileNotFoundError:
            pass
    _fail(f"{path}: no quota")


@quota_app.command("get")
def get(ctx: typer.Context, path: str = _path_option()):
    """PATH's limits and what its tree uses."""
    s = _session(ctx)
    _quota_table([(path, _quota_of(s, path))])


@quota_app.command("delete")
def delete(ctx: typer.Context, path: str = _path_option()):
    """Remove PATH's quota."""
    s = _session(ctx)
    q = _quota_of(s, path)
    with s.reporting(path):
        s.client.delete_quota(q.ino)


@quota_app.command("list")
def list_(ctx: typer.Context):
    """Every quota, with what its tree uses."""
    s = _session(ctx)
    with s.reporting("quota list"):
        _quota_table([(_dir_path(s.client, q.ino), q) for q in s.client.list_quotas()])


@quota_app.command("check")
def check(ctx: typer.Context,
          path: str | None = typer.Argument(None, metavar="[PATH]",
                                            help="A directory (default: every quota's)."),
          repair: bool = typer.Option(False, "--repair",
                                      help="Set the kept totals to what the walk found.")):
    """Walk each tree and compare its usage with the kept totals (exit status 1 if they
    differ and were not repaired)."""
    s = _session(ctx)
    bad = False
    with s.reporting(path or "quota check"):
        if path is None:
            targets = [(_dir_path(s.client, q.ino), q.ino) for q in s.client.list_quotas()]
        else:
            targets = [(path, s.resolve(path).ino)]
        for where, ino in targets:
            result = s.client.check_tree(ino, repair=repair)
            if result.ok:
                typer.echo(f"{where}: ok ({_totals(result.walked)})")
                continue
            bad = bad or not result.repaired
            typer.echo(f"{where}: kept {_totals(result.kept)}; walk found "
                       f"{_totals(result.walked)}" + ("; repaired" if result.repaired else ""))
    if bad:
        raise typer.Exit(1)


def _totals(t: Summary) -> str:
    return f"{t.dirs} dirs, {t.files} files, {t.size} bytes"


def summary(ctx: typer.Context, path: str = typer.Argument("/", metavar="PATH"),
            human: bool = typer.Option(False, "-h", "--human-readable",
                                       help="Sizes as 1.5K, 2.0M, ...")):
    """du-like totals of PATH's tree (directories, files, bytes), added up from the
    stats the server keeps per directory: it reads each directory, not each file."""
    s = _session(ctx)
    with s.reporting(path):
        t = s.client.summary(s.resolve(path).ino)
    size = _human(t.size) if human else str(t.size)
    typer.echo(f"{'PATH':<24} {'SIZE':>12} {'DIRS':>10} {'FILES':>10}")
    typer.echo(f"{path:<24} {size:>12} {t.dirs:>10} {t.files:>10}")
