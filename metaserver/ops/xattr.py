"""Extended attributes: get, set (CREATE/REPLACE), list, remove."""

from __future__ import annotations

import errno

from metaserver.errors import FsError, quote
from metaserver.ops.metatx import MetaTx
from metaserver.types import XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_VALUE_MAX, XattrFlags


def _check(name: bytes) -> None:
    if b"\0" in name:
        raise FsError(errno.EINVAL, "xattr name contains NUL")
    if not name or len(name) > XATTR_NAME_MAX:
        raise FsError(errno.ERANGE, f"xattr name must be 1..{XATTR_NAME_MAX} bytes")


def getxattr(tx: MetaTx, *, ino: int, name: bytes) -> bytes:
    _check(name)
    tx.attr(ino)
    value = tx.xattr(ino, name)
    if value is None:
        raise FsError(errno.ENODATA, f"no xattr {quote(name)}")
    return value


def listxattr(tx: MetaTx, *, ino: int) -> list[bytes]:
    tx.attr(ino)
    return tx.xattr_names(ino)


def setxattr(tx: MetaTx, *, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
    _check(name)
    if flags & ~int(XattrFlags.CREATE | XattrFlags.REPLACE):
        raise FsError(errno.EINVAL, f"unknown xattr flags {flags:#x}")
    if len(value) > XATTR_VALUE_MAX:
        raise FsError(errno.E2BIG, f"xattr value larger than {XATTR_VALUE_MAX} bytes")
    a = tx.attr(ino)
    exists = tx.xattr(ino, name) is not None
    if flags & XattrFlags.CREATE and exists:
        raise FsError(errno.EEXIST, f"xattr {quote(name)} exists")
    if flags & XattrFlags.REPLACE and not exists:
        raise FsError(errno.ENODATA, f"no xattr {quote(name)}")
    if not exists:
        names = listxattr(tx, ino=ino)
        if sum(len(n) + 1 for n in names) + len(name) + 1 > XATTR_LIST_MAX:
            raise FsError(errno.ENOSPC, "the xattr name list of this inode is full")
    tx.put_xattr(ino, name, value)
    a.ctime_ns = tx.now
    tx.put_attr(a)


def removexattr(tx: MetaTx, *, ino: int, name: bytes) -> None:
    _check(name)
    a = tx.attr(ino)
    if tx.xattr(ino, name) is None:
        raise FsError(errno.ENODATA, f"no xattr {quote(name)}")
    tx.del_xattr(ino, name)
    a.ctime_ns = tx.now
    tx.put_attr(a)
