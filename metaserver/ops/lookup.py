"""Read-only namespace operations: lookup, getattr, readlink, readdir, resolve."""

from __future__ import annotations

import errno

from metaserver.errors import FsError, quote
from metaserver.ops.metatx import MetaTx
from metaserver.types import NAME_MAX, PATH_MAX, READDIR_MAX, ROOT_INO, Attr, DirPage, Entry, FileType


def lookup(tx: MetaTx, *, parent: int, name: bytes) -> Entry:
    if name in (b".", b".."):
        pattr = tx.dir_attr(parent)
        ino = parent if name == b"." else pattr.parent
        a = tx.attr(ino)
        return Entry(name, ino, a.type, a)
    if not name or b"/" in name or b"\0" in name:
        raise FsError(errno.EINVAL, "name is empty or contains '/' or NUL")
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name longer than {NAME_MAX} bytes")
    return tx.child(parent, name)


def getattr_(tx: MetaTx, *, ino: int) -> Attr:
    return tx.attr(ino)


def readlink(tx: MetaTx, *, ino: int) -> bytes:
    a = tx.attr(ino)
    if a.type != FileType.SYMLINK:
        raise FsError(errno.EINVAL, f"inode {ino} is not a symbolic link")
    return tx.symlink_target(ino)


def readdir(tx: MetaTx, *, ino: int, cursor: bytes = b"", limit: int = 1000,
            with_attrs: bool = False) -> DirPage:
    """One page of a directory, in name order, after `cursor` (the last name seen)."""
    if limit <= 0 or limit > READDIR_MAX:
        raise FsError(errno.EINVAL, f"readdir limit must be 1..{READDIR_MAX}")
    tx.dir_attr(ino)
    found = list(tx.entries(ino, after=cursor, limit=limit + 1))
    more = len(found) > limit
    found = found[:limit]
    entries = [Entry(name, child, type_) for name, type_, child in found]
    if with_attrs and entries:
        for entry, a in zip(entries, tx.attrs([e.ino for e in entries])):
            entry.attr = a
    return DirPage(entries, entries[-1].name if more else b"")


def resolve(tx: MetaTx, *, path: bytes) -> Entry:
    """Walk an absolute path from the root without following symlinks (lstat-like).

    As in POSIX, whatever follows a component (even a trailing `/` or `/.`) requires it
    to be a directory: `/file/` is ENOTDIR. Symlinks are not followed, so `/link/` is
    ENOTDIR too."""
    if not path.startswith(b"/"):
        raise FsError(errno.EINVAL, "path must be absolute")
    if len(path) >= PATH_MAX:
        raise FsError(errno.ENAMETOOLONG, f"path longer than {PATH_MAX} bytes")
    entry = Entry(b"/", ROOT_INO, FileType.DIRECTORY, tx.attr(ROOT_INO))
    for part in path.split(b"/"):
        if entry.type != FileType.DIRECTORY:
            raise FsError(errno.ENOTDIR, f"{quote(entry.name)} is not a directory")
        if part not in (b"", b"."):
            entry = lookup(tx, parent=entry.ino, name=part)
    return entry
