"""The `metactl` command: look at and change a metaserver's namespace by path.

Paths are absolute in the metaserver (a relative one is taken from the root). A
failure prints one line, `metactl: <path>: <strerror>`, and exits 1; when the server
cannot be reached, `metactl: cannot reach metaserver at ADDR: <why>`. Long work (rm -r,
dump, load, fsck) shows its progress on a terminal (metaserver.cli.progress).

`dump`, `load` and `fsck` work on an engine directly (`--meta-url`), not through a
server: see their help for when that may be done while servers run.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import BinaryIO
from urllib.parse import urlsplit

import grpc
import typer

from engines import open_engine
from engines.contract import Engine, EngineError
from metaserver import rollback
from metaserver.cli import entry
from metaserver.channel import (TOKEN_ENV, TOKEN_FILE_ENV, Credentials, CredentialsError,
                                open_channel)
from metaserver.cli.progress import Metered, Tracker, progress
from metaserver.cli.quota import quota_app, summary
from metaserver.cli.tokens import token_app
from metaserver.cli.unreachable import unreachable
from metaserver.client import Client, SessionTimeout, SessionToken, wire
from metaserver.client import errors as client_errors
from metaserver.dump import DumpError, TargetNotEmpty, dump, load
from metaserver.errors import FsError
from metaserver.fsck import fsck
from metaserver.repair import repair
from metaserver.runner import open_namespace
from metaserver.service.config import META_URL_ENV
from metaserver.types import CHUNK_SIZE, ROOT_INO, Attr, Entry, FileType, Slice
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc, server_pb2_grpc
from metaserver.v1 import server_pb2 as spb

DEFAULT_SERVER = "127.0.0.1:7420"
RM_PAGE = 1000
SESSIONS_SHOWN = 20     # by `status`; it counts them all

app = typer.Typer(add_completion=False, rich_markup_mode=None,
                  help="Inspect and change the namespace of a metaserver.")
xattr_app = typer.Typer(rich_markup_mode=None, help="Extended attributes of a path.")
app.add_typer(xattr_app, name="xattr")
replication_app = typer.Typer(rich_markup_mode=None,
                              help="Replication between metaservers.")
app.add_typer(replication_app, name="replication")
app.add_typer(token_app, name="token")
app.add_typer(quota_app, name="quota")
app.command()(summary)


class Session:
    """One command's connection, and the path helpers and error reporting it shares.

    `min_seq` is the session token the command's reads must see (--min-seq);
    `verbose` prints the newest commit of the command to stderr as it ends."""

    def __init__(self, address: str, min_seq: SessionToken | None = None,
                 verbose: bool = False, credentials: Credentials = Credentials()) -> None:
        self.address = address
        self.verbose = verbose
        self.credentials = credentials
        self.failed = False             # a path failed and the command went on
        self.client = Client(address, session_token=min_seq, credentials=credentials)

    def close(self) -> None:
        commit = self.client.last_commit
        if self.verbose and commit is not None:
            typer.echo(f"commit-seq {commit}", err=True)
        self.client.close()

    @contextmanager
    def reporting(self, path: str, keep_going: bool = False) -> Iterator[None]:
        """Turn an OSError inside into the one-line message and exit status 1; with
        `keep_going`, print it and go on (`self.failed` says so) unless the server could
        not be reached."""
        try:
            yield
        except BrokenPipeError:  # the reader went away (`metactl ls | head`): click's job
            raise
        except SessionTimeout as exc:
            _fail(path, f"{os.strerror(exc.errno)} (waiting for --min-seq {exc.awaited})")
        except OSError as exc:
            # The client names the server address when it could not get an answer.
            if exc.filename == self.address:
                _unreachable(self.address, exc)
            if not keep_going:
                _fail(path, os.strerror(exc.errno))
            typer.echo(f"metactl: {path}: {os.strerror(exc.errno)}", err=True)
            self.failed = True

    def resolve(self, path: str) -> Entry:
        return self.client.resolve(_absolute(path))

    def locate(self, path: str, *, makes_directory: bool = False) -> tuple[int, bytes]:
        """(directory inode, name) of the last component of `path`.

        A trailing slash says that component is a directory, as in POSIX: ENOTDIR if it
        is something else, and ENOENT if it is missing, unless the caller is about to
        make a directory there (`mkdir a/`; then whatever exists is EEXIST)."""
        full = _absolute(path)
        head, _, name = (full.rstrip(b"/") or b"/").rpartition(b"/")
        parent = self.client.resolve(head or b"/").ino
        if _names_directory(path) and not makes_directory:
            self.client.resolve(full)
        return parent, name

    def destination(self, path: str, name: bytes,
                    source: tuple[int, bytes] | None = None) -> tuple[int, bytes]:
        """Where `mv`/`ln` put something called `name` given `path`: inside it if it is
        a directory, else at it. `source` is what `mv` moves (directory inode, name):
        a new name with a trailing slash is for a directory only (rename(2): ENOTDIR)."""
        try:
            entry = self.resolve(path)
        except FileNotFoundError:
            if source is None or not _names_directory(path):
                return self.locate(path)
            if self.client.lookup(*source).type != FileType.DIRECTORY:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
            return self.locate(path, makes_directory=True)
        return (entry.ino, name) if entry.type == FileType.DIRECTORY else self.locate(path)


def _fail(what: str, reason: str) -> None:
    typer.echo(f"metactl: {what}: {reason}", err=True)
    raise typer.Exit(1)


def _unreachable(address: str, exc: OSError) -> None:
    typer.echo(f"metactl: {unreachable(address, exc)}", err=True)
    raise typer.Exit(1)


def _absolute(path: str) -> bytes:
    raw = os.fsencode(path)
    return raw if raw.startswith(b"/") else b"/" + raw


def _names_directory(path: str) -> bool:
    """Whether `path` ends in a slash, which POSIX reads as "this is a directory"."""
    return _absolute(path).endswith(b"/")


def _basename(path: str) -> bytes:
    return _absolute(path).rstrip(b"/").rpartition(b"/")[2]


def _show(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _time(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns // 1_000_000_000))


def _session(ctx: typer.Context) -> Session:
    return ctx.find_root().obj


def _name_of(s: Session, entry: Entry, name: str) -> str:
    """`name`, and `-> target` for a symbolic link."""
    if entry.type == FileType.SYMLINK:
        return f"{name} -> {_show(s.client.readlink(entry.ino))}"
    return name


def _session_token(text: str | None) -> SessionToken | None:
    if text is None:
        return None
    try:
        return SessionToken.parse(text)
    except ValueError as exc:
        _fail("--min-seq", str(exc))



@app.callback()
def _root(ctx: typer.Context,
          version: bool = entry.version_option("metactl"),
          server: str = typer.Option(DEFAULT_SERVER, "--server", envvar="METASERVER_ADDRESS",
                                     metavar="HOST:PORT", help="The metaserver to talk to."),
          min_seq: str | None = typer.Option(
              None, "--min-seq", metavar="[EPOCH:]SEQ", callback=_session_token,
              help="Read at least this state: a follower waits (within the call's timeout) "
              "until it has applied sequence SEQ of epoch EPOCH, else fails with ETIMEDOUT. "
              "Takes what -v printed after a write."),
          verbose: bool = typer.Option(
              False, "-v", "--verbose",
              help="After a command that changed something, print `commit-seq EPOCH:SEQ` "
              "(its newest commit) to stderr."),
          token: str | None = typer.Option(None, "--token", envvar=TOKEN_ENV, metavar="TOKEN",
                                           help="Bearer token to show the server."),
          token_file: str | None = typer.Option(None, "--token-file", envvar=TOKEN_FILE_ENV,
                                                metavar="FILE", help="File holding the token."),
          tls: bool = typer.Option(False, "--tls", help="Reach the server over TLS (system "
                                   "CAs, unless --tls-ca)."),
          tls_ca: str | None = typer.Option(None, "--tls-ca", metavar="PEM",
                                            help="CA that signed the server's certificate."),
          tls_cert: str | None = typer.Option(None, "--tls-cert", metavar="PEM",
                                              help="Client certificate (mutual TLS)."),
          tls_key: str | None = typer.Option(None, "--tls-key", metavar="PEM",
                                             help="The private key of --tls-cert.")):
    try:
        credentials = Credentials.resolve(token, token_file, tls=tls, ca_file=tls_ca,
                                          cert_file=tls_cert, key_file=tls_key)
        session = Session(server, min_seq, verbose, credentials)
    except CredentialsError as exc:
        _fail(server, str(exc))
    ctx.obj = session
    ctx.call_on_close(session.close)


@app.command()
def mkdir(ctx: typer.Context, paths: list[str],
          parents: bool = typer.Option(False, "-p", "--parents",
                                       help="Make missing parents; no error if it exists.")):
    """Make directories."""
    s = _session(ctx)
    for path in paths:
        with s.reporting(path):
            if parents:
                s.client.makedirs(_absolute(path), exist_ok=True)
            else:
                s.client.mkdir(*s.locate(path, makes_directory=True))


@app.command()
def touch(ctx: typer.Context, paths: list[str]):
    """Create empty files, or set the times of existing ones to now."""
    s = _session(ctx)
    for path in paths:
        with s.reporting(path):
            parent, name = s.locate(path)
            try:
                s.client.create(parent, name)
            except FileExistsError:
                ino = s.client.lookup(parent, name).ino
                s.client.setattr(ino, atime_now=True, mtime_now=True)


@dataclasses.dataclass(frozen=True)
class _LsStyle:
    long: bool
    human: bool
    inode: bool

    def line(self, s: Session, e: Entry, name: str) -> str:
        head = f"{e.ino:>10} " if self.inode else ""
        if not self.long:
            return head + name
        a = e.attr
        size = _human(a.size) if self.human else str(a.size)
        return (f"{head}{stat.filemode(a.st_mode)} {a.nlink:>3} {a.uid:>5} {a.gid:>5} "
                f"{size:>12} {_time(a.mtime_ns)} {_name_of(s, e, name)}")


def _human(size: int) -> str:
    """Like ls -h: 1023, 1.0K, 15K, 2.3M (powers of 1024)."""
    value, unit = float(size), ""
    for unit in ("", "K", "M", "G", "T", "P", "E"):
        if value < 1024 or unit == "E":
            break
        value /= 1024
    if not unit:
        return str(size)
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def _listing(s: Session, directory: Entry, long: bool, dots: bool) -> Iterator[tuple[Entry, str]]:
    """A directory's entries in name order, page by page; with `dots`, . and .. first."""
    if dots:
        yield directory, "."
        parent = directory.attr.parent or directory.ino
        yield (Entry(b"..", parent, FileType.DIRECTORY, s.client.getattr(parent) if long
                     else None), "..")
    for e in s.client.readdir(directory.ino, with_attrs=long):
        yield e, _show(e.name)


@app.command()
def ls(ctx: typer.Context, path: str = typer.Argument("/", metavar="PATH"),
       long: bool = typer.Option(False, "-l", help="Mode, links, owner, size, mtime."),
       all_: bool = typer.Option(False, "-a", "--all", help="Show . and .. too."),
       directory: bool = typer.Option(False, "-d", "--directory",
                                      help="Show a directory itself, not its entries."),
       human: bool = typer.Option(False, "-h", "--human-readable",
                                  help="With -l: sizes as 1.0K, 15M, ..."),
       inode: bool = typer.Option(False, "-i", "--inode", help="Inode numbers first."),
       recursive: bool = typer.Option(False, "-R", "--recursive",
                                      help="List subdirectories too, each under its path.")):
    """List a directory (page by page), or show one entry."""
    s = _session(ctx)
    style = _LsStyle(long, human, inode)
    with s.reporting(path):
        entry = s.resolve(path)
        if directory or entry.type != FileType.DIRECTORY:
            typer.echo(style.line(s, entry, path))
            return
        pending, header = [(path, entry)], "{}:"
        while pending:
            where, listed = pending.pop()
            if recursive:
                typer.echo(header.format(where))
                header = "\n{}:"
            if all_ and listed.attr is None:        # .. needs the directory's parent
                listed = s.resolve(where)
            subdirectories = []
            for e, name in _listing(s, listed, long, all_):
                typer.echo(style.line(s, e, name))
                if recursive and e.type == FileType.DIRECTORY and name not in (".", ".."):
                    subdirectories.append((f"{where.rstrip('/')}/{name}", e))
            pending.extend(reversed(subdirectories))    # depth first, in name order


def _stat_value(a: Attr, field: str) -> str:
    value = getattr(a, field)
    if field == "type":
        return value.name.lower()
    if field == "mode":
        return f"{value:04o} ({stat.filemode(a.st_mode)})"
    if field.endswith("time_ns"):
        return f"{value} ({_time(value)})"
    return str(value)


@app.command("stat")
def stat_(ctx: typer.Context, path: str):
    """Show every attribute of a path (symlinks not followed), a symlink's target, and
    for a file with several links, each directory holding them (`link: PARENT_PATH
    (inode N) xCOUNT`)."""
    s = _session(ctx)
    with s.reporting(path):
        entry = s.resolve(path)
        a: Attr = entry.attr
        typer.echo(f"path: {path}")
        for field in dataclasses.fields(a):
            typer.echo(f"{field.name}: {_stat_value(a, field.name)}")
        if entry.type == FileType.SYMLINK:
            typer.echo(f"target: {_show(s.client.readlink(entry.ino))}")
        if entry.type != FileType.DIRECTORY and not a.parent:
            reply = _rpc(ctx, server_pb2_grpc.ServerInfoStub, "LinkParents",
                         spb.LinkParentsRequest(ino=entry.ino), optional=True)
            for p in reply.parents if reply is not None else ():
                where = _path_of(s.client, p.parent, s.client.getattr(p.parent))
                typer.echo(f"link: {where} (inode {p.parent}) x{p.links}")


def _path_of(client: Client, ino: int, attr: Attr) -> str:
    """A path of inode `ino`, found by walking parents up to the root and looking for
    each name in its parent's listing (a scan); `?` where a link has no one parent."""
    names: list[str] = []
    while ino != ROOT_INO:
        parent = attr.parent
        if not parent:
            return "?/" + "/".join(reversed(names))      # a hard link: parents in P keys
        name = next((e.name for e in client.readdir(parent) if e.ino == ino), None)
        if name is None:
            return "?/" + "/".join(reversed(names))
        names.append(_show(name))
        ino, attr = parent, client.getattr(parent)
    return "/" + "/".join(reversed(names))


@app.command()
def info(ctx: typer.Context, path: str = typer.Argument(None, metavar="[PATH]"),
         inode: int | None = typer.Option(None, "-i", "--inode", metavar="INO",
                                          help="The inode of this number instead of PATH.")):
    """Show what an inode is: its path (with -i, found by a walk up its parents), type,
    size, links, and what it holds (entries, chunks and slices, a symlink's target,
    extended attributes)."""
    if (path is None) == (inode is None):
        _fail("info", "give a PATH or -i INODE")
    s = _session(ctx)
    with s.reporting(path or str(inode)):
        if inode is None:
            entry = s.resolve(path)
            ino, a = entry.ino, entry.attr
        else:
            ino, a = inode, s.client.getattr(inode)
            path = _path_of(s.client, ino, a)
        lines = [("path", path), ("inode", ino), ("type", a.type.name.lower()),
                 ("size", f"{a.size} ({_human(a.size)})"), ("nlink", a.nlink),
                 ("parent", a.parent or "several (hard links)")]
        if a.type == FileType.DIRECTORY:
            lines.append(("entries", sum(1 for _ in s.client.readdir(ino))))
        elif a.type == FileType.SYMLINK:
            lines.append(("target", _show(s.client.readlink(ino))))
        elif a.type == FileType.REGULAR:
            chunks = -(-a.size // CHUNK_SIZE)
            lines += [("chunks", chunks), ("slices", sum(len(s.client.read_chunk(ino, i))
                                                        for i in range(chunks)))]
        lines.append(("xattrs", len(s.client.listxattr(ino))))
    for key, value in lines:
        typer.echo(f"{key}: {value}")


def _each_inode(ctx: typer.Context, paths: list[str], change) -> None:
    """change(client, ino) for each path in turn (symlinks not followed)."""
    s = _session(ctx)
    for path in paths:
        with s.reporting(path):
            change(s.client, s.resolve(path).ino)


@app.command()
def chmod(ctx: typer.Context, mode: str = typer.Argument(..., metavar="MODE",
                                                          help="Octal, e.g. 755."),
          paths: list[str] = typer.Argument(..., metavar="PATH...")):
    """Set the permission bits of paths."""
    try:
        bits = int(mode, 8)
    except ValueError:
        bits = -1
    if not 0 <= bits <= 0o7777:
        _fail(mode, "MODE must be octal, 0 to 7777")
    _each_inode(ctx, paths, lambda client, ino: client.setattr(ino, mode=bits))


@app.command()
def chown(ctx: typer.Context, owner: str = typer.Argument(..., metavar="UID[:GID]",
                                                          help="Numeric; :GID alone too."),
          paths: list[str] = typer.Argument(..., metavar="PATH...")):
    """Set the owner and/or group of paths."""
    uid_text, _, gid_text = owner.partition(":")
    if not (uid_text or gid_text) or not all(t.isdigit() for t in (uid_text, gid_text) if t):
        _fail(owner, "give UID, UID:GID or :GID, as numbers")
    uid, gid = (int(t) if t else None for t in (uid_text, gid_text))
    _each_inode(ctx, paths, lambda client, ino: client.setattr(ino, uid=uid, gid=gid))


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@app.command()
def truncate(ctx: typer.Context,
             size: str = typer.Option(..., "-s", "--size", metavar="SIZE",
                                      help="Bytes, or with K, M, G, T (powers of 1024)."),
             paths: list[str] = typer.Argument(..., metavar="PATH...")):
    """Set the size of files (their data beyond it is no longer part of them)."""
    number, unit = size.rstrip("KMGT"), size[len(size.rstrip("KMGT")):]
    if not number.isdigit() or unit not in _SIZE_UNITS:
        _fail(size, "SIZE must be a number of bytes, optionally with K, M, G or T")
    length = int(number) * _SIZE_UNITS[unit]
    _each_inode(ctx, paths, lambda client, ino: client.setattr(ino, size=length))


@app.command()
def mv(ctx: typer.Context, src: str, dst: str):
    """Rename SRC to DST, or move it into DST if that is a directory."""
    s = _session(ctx)
    with s.reporting(src):
        parent, name = s.locate(src)
    with s.reporting(dst):
        new_parent, new_name = s.destination(dst, name, source=(parent, name))
    with s.reporting(src):
        s.client.rename(parent, name, new_parent, new_name)


@app.command()
def ln(ctx: typer.Context, target: str, link_name: str,
       symbolic: bool = typer.Option(False, "-s", "--symbolic",
                                     help="Make a symbolic link holding TARGET as text.")):
    """Make LINK_NAME (or LINK_NAME/basename if a directory) a link to TARGET."""
    s = _session(ctx)
    with s.reporting(target):
        ino = None if symbolic else s.resolve(target).ino
    with s.reporting(link_name):
        parent, name = s.destination(link_name, _basename(target))
        if symbolic:
            s.client.symlink(parent, name, target)
        else:
            s.client.link(ino, parent, name)


@app.command()
def rm(ctx: typer.Context, paths: list[str],
       recursive: bool = typer.Option(False, "-r", "-R", "--recursive",
                                      help="Remove directories and their contents."),
       force: bool = typer.Option(False, "-f", "--force",
                                  help="Ignore paths that do not exist.")):
    """Remove files (and with -r, directory trees). A path that fails is reported and
    the others are still removed (exit status 1), as rm(1) does."""
    s = _session(ctx)
    with _rm_progress(recursive) as removed:
        for path in paths:
            with s.reporting(path, keep_going=True):
                try:
                    parent, name = s.locate(path)
                    entry = s.client.lookup(parent, name) if recursive else None
                    if entry is not None and entry.type == FileType.DIRECTORY:
                        _remove_tree(s.client, parent, entry, removed.advance)
                    else:
                        s.client.unlink(parent, name)
                    removed.advance()
                except FileNotFoundError:
                    if not force:
                        raise
    if s.failed:
        raise typer.Exit(1)


def _rm_progress(recursive: bool):
    """rm -r counts what it removes on a terminal (one line at the end when piped);
    plain rm is as quiet as rm(1)."""
    return progress("rm: removed", unit="entries") if recursive else nullcontext(Tracker())


def _remove_tree(client: Client, parent: int, top: Entry,
                 removed: Callable[[int], None]) -> None:
    """Depth first, one page at a time: a page's files go in one batch, its
    directories on the stack; a directory is re-read from the start until empty,
    so memory stays at a page per level however big the tree. `removed(n)` is told
    of each batch and directory gone (the top one is the caller's to count)."""
    stack = [(parent, top.name, top.ino)]
    while stack:
        parent_ino, name, ino = stack[-1]
        entries = client.readdir_page(ino, b"", RM_PAGE).entries
        if not entries:
            client.rmdir(parent_ino, name)
            stack.pop()
            if stack:
                removed(1)
            continue
        batch = client.batch()
        for e in entries:
            if e.type == FileType.DIRECTORY:
                stack.append((ino, e.name, e.ino))
            else:
                batch.unlink(ino, e.name)
        results = batch.run()
        for result in results:
            if isinstance(result, OSError) and not isinstance(result, FileNotFoundError):
                raise result
        removed(len(results))


@app.command()
def rmdir(ctx: typer.Context, paths: list[str]):
    """Remove empty directories."""
    s = _session(ctx)
    for path in paths:
        with s.reporting(path):
            s.client.rmdir(*s.locate(path))


def _with_last(items: Iterable) -> Iterator[tuple[object, bool]]:
    """(item, is it the last one) for each item, looking one ahead."""
    it = iter(items)
    sentinel = previous = object()
    for item in it:
        if previous is not sentinel:
            yield previous, False
        previous = item
    if previous is not sentinel:
        yield previous, True


@app.command()
def tree(ctx: typer.Context, path: str = typer.Argument("/", metavar="PATH"),
         level: int = typer.Option(0, "-L", "--level", min=0, metavar="N",
                                   help="Descend at most N levels; 0: all.")):
    """Show the tree below a directory, streaming it depth first."""
    s = _session(ctx)
    with s.reporting(path):
        top = s.resolve(path)
        typer.echo(path)
        counts = {True: 0, False: 0}  # is a directory -> how many
        stack = []
        if top.type == FileType.DIRECTORY:
            stack.append(("", _with_last(s.client.readdir(top.ino))))
        while stack:
            prefix, entries = stack[-1]
            entry, last = next(entries, (None, True))
            if entry is None:
                stack.pop()
                continue
            branch = "└── " if last else "├── "
            typer.echo(prefix + branch + _name_of(s, entry, _show(entry.name)))
            is_dir = entry.type == FileType.DIRECTORY
            counts[is_dir] += 1
            if is_dir and (not level or len(stack) < level):
                stack.append((prefix + ("    " if last else "│   "),
                              _with_last(s.client.readdir(entry.ino))))
        dirs, files = counts[True], counts[False]
        typer.echo(f"\n{dirs} director{'y' if dirs == 1 else 'ies'}, "
                   f"{files} file{'' if files == 1 else 's'}")


_ENCODINGS = {"text": _show, "hex": lambda v: "0x" + v.hex(),
              "base64": lambda v: "0s" + base64.b64encode(v).decode()}


def _encoding_option():
    return typer.Option("text", "-e", "--encoding", metavar="ENC",
                        help="Values as text, hex (0x...) or base64 (0s...), as getfattr -e.")


def _encoder(encoding: str):
    if encoding not in _ENCODINGS:
        _fail(encoding, f"-e must be one of {', '.join(_ENCODINGS)}")
    return _ENCODINGS[encoding]


@xattr_app.command("get")
def xattr_get(ctx: typer.Context, path: str, name: str, encoding: str = _encoding_option()):
    """Print the value of attribute NAME."""
    encode = _encoder(encoding)
    s = _session(ctx)
    with s.reporting(path):
        typer.echo(encode(s.client.getxattr(s.resolve(path).ino, name)))


@xattr_app.command("set")
def xattr_set(ctx: typer.Context, path: str, name: str, value: str):
    """Set attribute NAME to VALUE."""
    s = _session(ctx)
    with s.reporting(path):
        s.client.setxattr(s.resolve(path).ino, name, value)


@xattr_app.command("list")
def xattr_list(ctx: typer.Context, path: str,
               values: bool = typer.Option(False, "-d", "--values",
                                           help="NAME=VALUE lines, as getfattr -d."),
               encoding: str = _encoding_option()):
    """Print the attribute names, one a line (with -d, their values too)."""
    encode = _encoder(encoding)
    s = _session(ctx)
    with s.reporting(path):
        ino = s.resolve(path).ino
        for name in s.client.listxattr(ino):
            typer.echo(f"{_show(name)}={encode(s.client.getxattr(ino, name))}" if values
                       else _show(name))


@xattr_app.command("rm")
def xattr_rm(ctx: typer.Context, path: str, name: str):
    """Remove attribute NAME."""
    s = _session(ctx)
    with s.reporting(path):
        s.client.removexattr(s.resolve(path).ino, name)


@app.command()
def statfs(ctx: typer.Context):
    """Show space and inode usage."""
    s = _session(ctx)
    with s.reporting(s.address):
        usage = s.client.statfs()
    for what in ("bytes", "inodes"):
        typer.echo(f"{what}: total {getattr(usage, 'total_' + what)} "
                   f"used {getattr(usage, 'used_' + what)} avail {getattr(usage, 'avail_' + what)}")


# --- replication ---------------------------------------------------------------------------

def _rpc(ctx: typer.Context, stub, rpc: str, request, *, optional: bool = False):
    """Call one RPC of `stub`'s service on --server; a failure is the one-line error.
    `optional`: a server too old to have the RPC answers None (a rolling upgrade)."""
    session = _session(ctx)
    address = session.address
    with open_channel(address, session.credentials) as channel:
        try:
            return getattr(stub(channel), rpc)(request, timeout=60)
        except grpc.RpcError as exc:
            if optional and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            if not client_errors.answered(exc) and exc.code() in (
                    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                # Not reached: the same line as every other command's.
                _unreachable(address, client_errors.from_rpc_error(exc, address, [None]))
            _fail(address, f"{exc.code().name}: {exc.details()}")


def _replication(ctx: typer.Context, rpc: str, request):
    return _rpc(ctx, replication_pb2_grpc.ReplicationStub, rpc, request)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return (f"{days}d" if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


@app.command()
def status(ctx: typer.Context):
    """Show the server: version, engine, uptime, role, epoch, replication, security,
    limits, usage, and client sessions (each: its lease and how many inodes it holds
    open or locks; the first SESSIONS_SHOWN)."""
    info = _rpc(ctx, server_pb2_grpc.ServerInfoStub, "Info", spb.InfoRequest())
    repl = _replication(ctx, "Status", rpb.StatusRequest())
    sessions = _rpc(ctx, server_pb2_grpc.ServerInfoStub, "Sessions",
                    spb.SessionsRequest(limit=SESSIONS_SHOWN), optional=True)
    s = _session(ctx)
    with s.reporting(s.address):
        usage = s.client.statfs()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.started_at_unix))
    lines = [("server", f"{s.address} (serving {info.listen})"),
             ("version", info.version), ("engine", info.engine),
             ("uptime", f"{_duration(info.uptime_seconds)} (since {started})"),
             ("role", repl.role), ("epoch", repl.epoch), ("last_seq", repl.last_seq)]
    if repl.role == "follower":
        lines += [("primary", f"{repl.primary} ({'connected' if repl.connected else 'cut off'}"
                   f", last heard {repl.last_contact_seconds:.1f} s ago)"),
                  ("applied_seq", f"{repl.applied_seq} of {repl.primary_seq}"),
                  ("lag", f"{repl.lag_records} records, {repl.lag_seconds:.3f} s")]
    security = [name for name, on in (("tls", info.tls), ("mutual tls", info.mutual_tls),
                                      ("tokens", info.tokens)) if on]
    limits = [f"{value:g} {what}" for value, what in (
        (info.client_ops_per_s, "calls/s per client"),
        (info.client_max_concurrent, "concurrent per client"),
        (info.max_concurrent_calls, "concurrent in all")) if value]
    lines += [("security", ", ".join(security) or "none (open)"),
              ("limits", ", ".join(limits) or "none"), ("workers", info.workers),
              ("bytes", f"used {usage.used_bytes} of {usage.total_bytes}"),
              ("inodes", f"used {usage.used_inodes} of {usage.total_inodes}"),
              ("sessions", "unknown (the server predates ServerInfo.Sessions)"
               if sessions is None else sessions.count)]
    now_ns = time.time_ns()
    for session in sessions.sessions if sessions is not None else ():
        left = (session.expires_unix_ns - now_ns) / 1e9
        lease = f"lease ends in {left:.1f} s" if left > 0 else \
            f"lease ended {-left:.1f} s ago (cleaned up by maintenance)"
        lines.append((f"session {session.id.hex()}",
                      f"{lease}; holds or locks {session.inodes} inodes"))
    for key, value in lines:
        typer.echo(f"{key}: {value}")


@replication_app.command("status")
def replication_status(ctx: typer.Context):
    """Show the server's role, epoch, positions, lag and apply rate."""
    reply = _replication(ctx, "Status", rpb.StatusRequest())
    for field in reply.DESCRIPTOR.fields:
        value = getattr(reply, field.name)
        typer.echo(f"{field.name}: {value:.3f}" if isinstance(value, float)
                   else f"{field.name}: {str(value).lower() if isinstance(value, bool) else value}")


@app.command()
def promote(ctx: typer.Context,
            force: bool = typer.Option(False, "--force", help="Promote even if the old "
                                       "primary cannot be fenced first (forced failover)."),
            timeout: float = typer.Option(30.0, "--timeout", metavar="SECONDS",
                                          help="Seconds to wait for the "
                                          "follower to apply the old primary's last record.")):
    """Make the follower at --server the primary, with a new epoch.

    Planned switchover (the old primary answers): it is fenced first (refuses writes
    with EROFS from then on), this follower applies its last record, then is promoted:
    nothing is lost. Forced failover (--force, the old primary unreachable): promoted
    at the position it has; the old primary's writes after it are the loss window, kept
    in a rollback file when that node rejoins (`metaserver serve --follow NEW --rejoin`)."""
    reply = _replication(ctx, "Promote", rpb.PromoteRequest(force=force, timeout_s=timeout))
    typer.echo(f"promoted: epoch {reply.epoch} at position {reply.promoted_at_seq} of epoch "
               f"{reply.promoted_at_epoch} (own change sequence {reply.seq})")
    if reply.old_primary_fenced:
        typer.echo(f"old primary: fenced at sequence {reply.old_primary_seq}; records lost: "
                   f"{reply.records_lost}")
    else:
        typer.echo(f"old primary: unreachable, not fenced yet (forced); its writes after "
                   f"sequence {reply.promoted_at_seq} are not here: it keeps them in a "
                   "rollback file when it rejoins")


rollback_app = typer.Typer(rich_markup_mode=None,
                           help="Rollback files a rejoining node wrote.")
app.add_typer(rollback_app, name="rollback")


def _format_call(op: str, args: dict, paths: dict[int, str]) -> str:
    shown = []
    for name, value in args.items():
        if name in rollback.INODE_ARGS and isinstance(value, int):
            value = paths.get(value, f"<inode {value}>")
        elif isinstance(value, bytes):
            value = _show(value)
        shown.append(f"{name}={value}")
    return f"{op}({', '.join(shown)})"


def _rollback_file(file: str) -> tuple[dict, list[rollback.KeptOperation]]:
    try:
        with open(file, "rb") as src:
            described = rollback.description(src)
        return described, rollback.operations(lambda: open(file, "rb"))
    except OSError as exc:
        _fail(file, exc.strerror or str(exc))
    except DumpError as exc:
        _fail(file, str(exc))


@rollback_app.command("list")
def rollback_list(file: str = typer.Argument(..., help="A rollback file.")):
    """The records a rejoining node kept, with the paths their inodes had there."""
    described, kept = _rollback_file(file)
    records = described["records"]
    typer.echo(f"epoch {described['epoch']}: {'an unknown number of' if records < 0 else records}"
               f" operations after sequence {described['fork_seq']} (now followed: "
               f"{described['source']}); {len(kept)} kept one by one")
    for item in kept:
        calls = "; ".join(_format_call(op, args, item.paths) for op, args in item.calls)
        typer.echo(f"{item.seq}\t{item.op}\t{calls}")


@rollback_app.command("apply")
def rollback_apply(ctx: typer.Context, file: str = typer.Argument(..., help="A rollback file."),
                   seqs: list[int] = typer.Option([], "--seq", metavar="SEQ",
                                                  help="A record to re-apply "
                                                  "(repeatable)."),
                   apply_all: bool = typer.Option(False, "--all", help="Re-apply every record.")):
    """Run chosen records again on --server (the new primary), by path, with their
    original request ids (applying twice applies once). A record whose paths no
    longer resolve there, or that the namespace refuses, is reported and skipped."""
    _, kept = _rollback_file(file)
    chosen = [k for k in kept if apply_all or k.seq in seqs]
    if not chosen:
        _fail(file, "no record chosen (--seq N or --all)")
    s = _session(ctx)
    failed = 0
    for item in chosen:
        try:
            for op, args in item.calls:
                fields = dict(args)
                for name in rollback.INODE_ARGS:
                    if isinstance(fields.get(name), int):
                        path = item.paths.get(fields[name])
                        if path is None:
                            raise FileNotFoundError(errno.ENOENT, f"inode {fields[name]} has "
                                                    "no path in the rollback file")
                        fields[name] = s.client.resolve(path).ino
                if isinstance(fields.get("slice"), Slice):
                    fields["slice"] = wire.slice_to_pb(fields["slice"])
                s.client.call(op, request_id=item.request_id or s.client.new_request_id(),
                              **fields)
            typer.echo(f"{item.seq}\t{item.op}\tapplied")
        except OSError as exc:
            failed += 1
            typer.echo(f"{item.seq}\t{item.op}\tskipped: {exc.strerror or exc}", err=True)
    if failed:
        raise typer.Exit(1)


# --- commands on an engine directly --------------------------------------------------------

_ENGINE_HELP = ("Engine URL: rocksdb:///path (its server stopped: RocksDB admits one process), "
                "or a database any number of servers may share while they run "
                "(mysql+pymysql://..., postgresql://..., sqlite:///..., tikv://...).")


def _meta_url() -> str:
    return typer.Option(..., "--meta-url", envvar=META_URL_ENV, metavar="URL", help=_ENGINE_HELP)


@contextmanager
def _reporting(url: str, file: str = "") -> Iterator[None]:
    """Engine failures (named by the URL, without its password) and file failures
    (named by `file`) become the one-line error."""
    password = urlsplit(url).password
    hide = (lambda text: text.replace(password, "***")) if password else (lambda text: text)
    try:
        yield
    except (EngineError, FsError, TargetNotEmpty) as exc:
        _fail(hide(url), hide(str(exc)))
    except DumpError as exc:
        _fail(file, str(exc))
    except OSError as exc:
        _fail(exc.filename or file, exc.strerror or str(exc))


@contextmanager
def _opened(url: str, *, formatted: bool = True) -> Iterator[Engine]:
    """The engine at `url`, holding a formatted namespace (NotFormatted if not, and
    nothing is created); with formatted=False, an engine to fill (created if missing)."""
    engine = open_namespace(url) if formatted else open_engine(url, create=True)
    try:
        yield engine
    finally:
        engine.close()


@contextmanager
def _file(file: str, mode: str) -> Iterator[BinaryIO]:
    """FILE opened in `mode` ("rb" or "wb"; - is standard input or output). A file
    written by a body that fails is removed: an incomplete dump is of no use."""
    if file == "-":
        yield sys.stdout.buffer if mode == "wb" else sys.stdin.buffer
        return
    with open(file, mode) as opened:
        try:
            yield opened
        except BaseException:
            if mode == "wb":
                os.unlink(file)
            raise


@app.command("dump")
def dump_command(file: str = typer.Argument(..., help="Where to write it; - for standard output."),
                 meta_url: str = _meta_url(),
                 compress: bool = typer.Option(True, "--compress/--no-compress",
                                               help="gzip the records (level 1).")):
    """Write a consistent snapshot of the whole namespace to FILE.

    It is the state after one change sequence, taken without stopping
    writers where the engine admits them. Prints one line (to standard
    error when FILE is -): keys, bytes, seconds and that change sequence."""
    with _reporting(meta_url, file), _opened(meta_url) as engine, _file(file, "wb") as out, \
            progress("dump: wrote", unit="bytes", final_line=False) as written:
        summary = dump(engine, Metered(out, written), compress=compress)
    typer.echo(str(summary), err=file == "-")


@app.command("load")
def load_command(file: str = typer.Argument(..., help="A dump; - for standard input."),
                 meta_url: str = _meta_url()):
    """Fill an empty engine from a dump, before any server runs on it.

    A file is checked whole before anything is written; from standard input,
    damage stops the load where it is found, and that target is to be
    discarded. Prints one line: keys, bytes, seconds, the source's change
    sequence and this engine's."""
    with _reporting(meta_url, file), _file(file, "rb") as src, \
            _opened(meta_url, formatted=False) as engine, \
            progress("load: read", unit="bytes", final_line=False) as read:
        summary = load(engine, Metered(src, read))
    typer.echo(str(summary))


@app.command("fsck")
def fsck_command(meta_url: str = _meta_url(),
                 fix: bool = typer.Option(False, "--repair",
                                          help="Fix what is safe to fix, then check again.")):
    """Check the namespace's invariants; exit 0 if clean, 1 if problems remain.

    It reads one consistent snapshot, so it may run beside servers on a
    shared database. --repair is meant for a quiet namespace; it prints
    each change it makes."""
    with _reporting(meta_url), _opened(meta_url) as engine:
        with progress("fsck: checking", unit="", final_line=False):
            report = fsck(engine)
        typer.echo(str(report))
        if not report.ok and fix:
            typer.echo(str(repair(engine, report)))
            report = fsck(engine)
            typer.echo(f"after repair: {report}")
    if not report.ok:
        raise typer.Exit(1)

def main() -> None:
    entry.run(app, "metactl")
