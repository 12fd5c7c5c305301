"""`python -m metaserver.cli.bulk`: build a new RocksDB namespace in bulk (metaserver.bulk),
from a tree shape or a `find` listing, before any server runs on it. One line on success
(what was built, how fast); any failure is one line on stderr and exit status 1."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from metaserver import bulk

app = typer.Typer(add_completion=False)
ROCKSDB_SCHEMES = ("rocksdb://", "rocksdb+unsafe-nosync://")


def _count(text: str) -> int:
    return int(float(text))


@app.command()
def build(meta_url: str = typer.Option(..., "--meta-url", metavar="URL",
                                       help="rocksdb://PATH of a store that does not exist yet."),
          files: str = typer.Option("", "--files", help="Tree shape: this many files (1e8 works)."),
          files_per_dir: str = typer.Option("1e6", "--files-per-dir",
                                            help="Tree shape: files per directory."),
          listing: Path = typer.Option(None, "--listing",
                                       help="Listing shape: a file of `find DIR -printf "
                                       "'%y %p -> %l\\n'` lines ('-': standard input).")):
    """Build /dir.J/file.I (--files) or the tree a listing describes (--listing)."""
    scheme = next((s for s in ROCKSDB_SCHEMES if meta_url.startswith(s)), None)
    try:
        if scheme is None:
            raise bulk.BulkError(f"a bulk build makes a RocksDB store: {meta_url!r} is not "
                                 "rocksdb://PATH")
        if bool(files) == (listing is not None):
            raise bulk.BulkError("give one shape: --files N or --listing FILE")
        path = meta_url[len(scheme):]
        if listing is None:
            summary = bulk.build(path, bulk.TreeShape(_count(files), _count(files_per_dir)))
        elif str(listing) == "-":
            summary = bulk.build(path, bulk.ListingShape(sys.stdin))
        else:
            with open(listing, encoding="utf-8", errors="surrogateescape") as lines:
                summary = bulk.build(path, bulk.ListingShape(lines))
    except (bulk.BulkError, OSError, ValueError) as exc:
        typer.echo(f"bulk build: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(summary))


if __name__ == "__main__":
    app()
