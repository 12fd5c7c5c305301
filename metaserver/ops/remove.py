"""Operations that remove a name: unlink and rmdir (and the shared drop of a link)."""

from __future__ import annotations

import errno

from metaserver.errors import FsError, quote
from metaserver.ops.metatx import MetaTx, check_name
from metaserver.ops.quota import TreeChange, forget_dir
from metaserver.ops.sessions import is_held
from metaserver.types import Attr


def unlink(tx: MetaTx, *, parent: int, name: bytes) -> None:
    check_name(name)
    entry = tx.child(parent, name)
    if entry.attr.is_dir:
        raise FsError(errno.EISDIR, f"{quote(name)} is a directory")
    TreeChange(tx).add_entry(parent, entry.attr, -1).apply()
    tx.del_dentry(parent, name)
    drop_link(tx, entry.attr, parent)
    tx.touch_dir(tx.attr(parent))


def rmdir(tx: MetaTx, *, parent: int, name: bytes) -> None:
    check_name(name)
    entry = tx.child(parent, name)
    if not entry.attr.is_dir:
        raise FsError(errno.ENOTDIR, f"{quote(name)} is not a directory")
    if not tx.is_empty_dir(entry.ino):
        raise FsError(errno.ENOTEMPTY, f"directory {quote(name)} is not empty")
    TreeChange(tx).add_entry(parent, entry.attr, -1).apply()
    tx.del_dentry(parent, name)
    forget_dir(tx, entry.ino)
    tx.drop_inode(entry.attr)
    pattr = tx.attr(parent)
    pattr.nlink -= 1
    tx.touch_dir(pattr, force=True)


def drop_link(tx: MetaTx, a: Attr, parent: int) -> None:
    """One link of non-directory `a` from `parent` is gone: update or free the inode
    (kept with nlink 0 while a live client session holds it open)."""
    a.nlink -= 1
    if a.nlink == 0:
        keys = tx.inode_keys(a.ino)     # one scan finds the holds and what to drop
        if not is_held(tx, a.ino, keys=keys):
            tx.drop_inode(a, keys)
            return
    tx.remove_link_parent(a, parent)
    a.ctime_ns = tx.now
    tx.put_attr(a)
