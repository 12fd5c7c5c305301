"""Operations that add a name: create, mknod, mkdir, symlink, link."""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.ops.quota import TreeChange
from metaserver.types import LINK_MAX, SYMLINK_MAX, Entry, FileType

_MKNOD_TYPES = {FileType.REGULAR, FileType.FIFO, FileType.SOCKET,
                FileType.CHAR_DEVICE, FileType.BLOCK_DEVICE}
DIR_NLINK_MAX = (1 << 31) - 1


def mknod(tx: MetaTx, *, parent: int, name: bytes, type: FileType = FileType.REGULAR,
          mode: int = 0o644, uid: int = 0, gid: int = 0, rdev: int = 0) -> Entry:
    if type == FileType.DIRECTORY:
        raise FsError(errno.EPERM, "mknod cannot make a directory: use mkdir")
    if type not in _MKNOD_TYPES:
        raise FsError(errno.EINVAL, "mknod makes regular files, fifos, sockets and devices")
    pattr = tx.free_name(parent, name)
    a = tx.new_inode(type, mode, uid, gid, parent,
                     rdev=rdev if type in (FileType.CHAR_DEVICE, FileType.BLOCK_DEVICE) else 0)
    tx.put_dentry(parent, name, type, a.ino)
    tx.touch_dir(pattr)
    TreeChange(tx).add_entry(parent, a).apply()
    return Entry(name, a.ino, type, a)


def create(tx: MetaTx, *, parent: int, name: bytes, mode: int = 0o644, uid: int = 0,
           gid: int = 0) -> Entry:
    """A regular file. An operation of its own, not mknod's, because a request id is
    bound to its operation's name: a Create's id replayed by a Mknod (a FIFO, say) must
    be refused, not answered with the regular file."""
    return mknod(tx, parent=parent, name=name, mode=mode, uid=uid, gid=gid)


def mkdir(tx: MetaTx, *, parent: int, name: bytes, mode: int = 0o755, uid: int = 0,
          gid: int = 0) -> Entry:
    pattr = tx.free_name(parent, name)
    if pattr.nlink >= DIR_NLINK_MAX:
        raise FsError(errno.EMLINK, "too many subdirectories")
    a = tx.new_inode(FileType.DIRECTORY, mode, uid, gid, parent, nlink=2)
    tx.put_dentry(parent, name, FileType.DIRECTORY, a.ino)
    pattr.nlink += 1
    tx.touch_dir(pattr, force=True)
    TreeChange(tx).add_entry(parent, a).apply()
    return Entry(name, a.ino, FileType.DIRECTORY, a)


def symlink(tx: MetaTx, *, parent: int, name: bytes, target: bytes, uid: int = 0,
            gid: int = 0) -> Entry:
    if not target:
        raise FsError(errno.ENOENT, "symlink target is empty")
    if b"\0" in target:
        raise FsError(errno.EINVAL, "symlink target contains NUL")
    if len(target) > SYMLINK_MAX:
        raise FsError(errno.ENAMETOOLONG, f"symlink target longer than {SYMLINK_MAX} bytes")
    pattr = tx.free_name(parent, name)
    a = tx.new_inode(FileType.SYMLINK, 0o777, uid, gid, parent, size=len(target))
    tx.put_symlink_target(a.ino, target)
    tx.put_dentry(parent, name, FileType.SYMLINK, a.ino)
    tx.touch_dir(pattr)
    TreeChange(tx).add_entry(parent, a).apply()
    return Entry(name, a.ino, FileType.SYMLINK, a)


def link(tx: MetaTx, *, ino: int, parent: int, name: bytes) -> Entry:
    a = tx.attr(ino)
    pattr = tx.free_name(parent, name)      # Linux resolves the new name first
    if a.is_dir:
        raise FsError(errno.EPERM, "hard links to directories are not allowed")
    if a.nlink >= LINK_MAX:
        raise FsError(errno.EMLINK, f"inode {ino} already has {a.nlink} links")
    a.nlink += 1
    a.ctime_ns = tx.now
    tx.add_link_parent(a, parent)
    tx.put_attr(a)
    tx.put_dentry(parent, name, a.type, ino)
    tx.touch_dir(pattr)
    TreeChange(tx).add_entry(parent, a).apply()
    return Entry(name, ino, a.type, a)
