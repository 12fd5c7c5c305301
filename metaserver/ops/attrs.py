"""setattr: mode, owner, times and size (truncate), with Linux's ctime/mtime rules."""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.ops.quota import TreeChange
from metaserver.types import CHUNK_SIZE, MAX_FILE_SIZE, Attr, FileType, SetAttrMask, Slice

_ALL = int(sum(SetAttrMask))   # a plain int: ~ on an IntFlag keeps only known bits


def setattr_(tx: MetaTx, *, ino: int, mask: int, mode: int = 0, uid: int = 0, gid: int = 0,
             size: int = 0, atime_ns: int = 0, mtime_ns: int = 0, ctime_ns: int = 0) -> Attr:
    if mask & ~_ALL:
        raise FsError(errno.EINVAL, f"unknown setattr mask bits {mask:#x}")
    a = tx.attr(ino)
    now = tx.now
    if mask & SetAttrMask.MODE:
        a.mode = mode & 0o7777
    if mask & SetAttrMask.UID:
        a.uid = uid
    if mask & SetAttrMask.GID:
        a.gid = gid
    if mask & SetAttrMask.SIZE:
        if a.is_dir:
            raise FsError(errno.EISDIR, f"inode {ino} is a directory")
        if a.type != FileType.REGULAR:
            raise FsError(errno.EINVAL, f"inode {ino} is not a regular file")
        if size < 0:
            raise FsError(errno.EINVAL, "negative size")
        if size > MAX_FILE_SIZE:
            raise FsError(errno.EFBIG, f"size larger than {MAX_FILE_SIZE}")
        if size != a.size:
            truncate(tx, a, size)
        a.mtime_ns = now
    if mask & SetAttrMask.ATIME_NOW:
        a.atime_ns = now
    elif mask & SetAttrMask.ATIME:
        a.atime_ns = atime_ns
    if mask & SetAttrMask.MTIME_NOW:
        a.mtime_ns = now
    elif mask & SetAttrMask.MTIME:
        a.mtime_ns = mtime_ns
    a.ctime_ns = ctime_ns if mask & SetAttrMask.CTIME else now
    tx.put_attr(a)
    return a


def truncate(tx: MetaTx, a: Attr, size: int) -> None:
    """Set the length; shrinking drops whole chunks past the end and masks the tail of
    the last one with a hole, so a later extension reads zeros, not old bytes."""
    if size < a.size:
        last = size // CHUNK_SIZE
        offset = size % CHUNK_SIZE
        tx.drop_chunks(a.ino, first=last + (1 if offset else 0))
        if offset:
            slices = tx.chunk(a.ino, last)
            if slices:
                end = min(CHUNK_SIZE, a.size - last * CHUNK_SIZE)
                tx.put_chunk(a.ino, last, slices + [Slice(offset, 0, 0, 0, end - offset)])
    TreeChange(tx).add_file_size(a, size - a.size).apply()
    tx.account(size - a.size, 0)
    a.size = size
