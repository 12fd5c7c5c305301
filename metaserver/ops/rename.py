"""rename(2) with renameat2 flags: plain, NOREPLACE and EXCHANGE.

Moving a directory checks, inside the transaction, that the destination directory is
not the source or below it, by walking the destination's ancestors. Every hop is a
read, so a concurrent rename that changes any of those parents conflicts with this
transaction and one of the two retries: two renames can never build a detached cycle.
"""

from __future__ import annotations

import errno

from metaserver.errors import FsError, quote
from metaserver.ops.metatx import MetaTx, check_name
from metaserver.ops.remove import drop_link
from metaserver.types import Attr, Entry, RenameFlags

_KNOWN = int(RenameFlags.NOREPLACE | RenameFlags.EXCHANGE | RenameFlags.WHITEOUT)  # plain int for ~


def rename(tx: MetaTx, *, parent: int, name: bytes, new_parent: int, new_name: bytes,
           flags: int = 0) -> Entry:
    if flags & ~_KNOWN:
        raise FsError(errno.EINVAL, f"unknown rename flags {flags:#x}")
    if flags & RenameFlags.WHITEOUT:
        raise FsError(errno.EOPNOTSUPP, "RENAME_WHITEOUT is not supported")
    if flags & RenameFlags.NOREPLACE and flags & RenameFlags.EXCHANGE:
        raise FsError(errno.EINVAL, "NOREPLACE and EXCHANGE exclude each other")
    check_name(name)
    check_name(new_name)
    src = tx.child(parent, name)
    tx.dir_attr(new_parent)
    found = tx.dentry(new_parent, new_name)
    dst = None
    if found is not None:
        dst = Entry(new_name, found[1], found[0], tx.attr(found[1]))
    if flags & RenameFlags.EXCHANGE:
        if dst is None:
            raise FsError(errno.ENOENT, f"EXCHANGE: no entry {quote(new_name)}")
        if dst.ino != src.ino:
            _exchange(tx, parent, src, new_parent, dst)
        return Entry(new_name, src.ino, src.type, tx.attr(src.ino))
    if dst is not None:
        if flags & RenameFlags.NOREPLACE:
            raise FsError(errno.EEXIST, f"{quote(new_name)} exists")
        if dst.ino == src.ino:              # same inode (hard links or same entry): no-op
            return Entry(new_name, src.ino, src.type, src.attr)
        if src.attr.is_dir and not dst.attr.is_dir:
            raise FsError(errno.ENOTDIR, f"{quote(new_name)} is not a directory")
        if not src.attr.is_dir and dst.attr.is_dir:
            raise FsError(errno.EISDIR, f"{quote(new_name)} is a directory")
        if dst.attr.is_dir and not tx.is_empty_dir(dst.ino):
            raise FsError(errno.ENOTEMPTY, f"directory {quote(new_name)} is not empty")
    if src.attr.is_dir and new_parent != parent and tx.is_ancestor(src.ino, new_parent):
        raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")

    tx.del_dentry(parent, name)
    tx.put_dentry(new_parent, new_name, src.type, src.ino)
    parents = _Parents(tx, parent, new_parent)
    if dst is not None:
        if dst.attr.is_dir:
            tx.drop_inode(dst.attr)
            parents.get(new_parent).nlink -= 1
        else:
            drop_link(tx, dst.attr, new_parent)
    _move(tx, src.attr, parent, new_parent, parents)
    parents.save()
    return Entry(new_name, src.ino, src.type, src.attr)


def _exchange(tx: MetaTx, parent: int, src: Entry, new_parent: int, dst: Entry) -> None:
    if new_parent != parent:
        if src.attr.is_dir and tx.is_ancestor(src.ino, new_parent):
            raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
        if dst.attr.is_dir and tx.is_ancestor(dst.ino, parent):
            raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
    tx.put_dentry(parent, src.name, dst.type, dst.ino)
    tx.put_dentry(new_parent, dst.name, src.type, src.ino)
    parents = _Parents(tx, parent, new_parent)
    _move(tx, src.attr, parent, new_parent, parents)
    _move(tx, dst.attr, new_parent, parent, parents)
    parents.save()


def _move(tx: MetaTx, a: Attr, old: int, new: int, parents: "_Parents") -> None:
    """Re-parent inode `a` from directory `old` to `new` and stamp its ctime."""
    if old != new:
        if a.is_dir:
            a.parent = new
            parents.get(old).nlink -= 1
            parents.get(new).nlink += 1
        else:                   # move one link: drop it from `old`, add it under `new`
            a.nlink -= 1
            tx.remove_link_parent(a, old)
            a.nlink += 1
            tx.add_link_parent(a, new)
    a.ctime_ns = tx.now
    tx.put_attr(a)


class _Parents:
    """The one or two parent directories of a rename, loaded once, written once."""

    def __init__(self, tx: MetaTx, *inos: int) -> None:
        self.tx = tx
        self.attrs = {ino: tx.attr(ino) for ino in dict.fromkeys(inos)}

    def get(self, ino: int) -> Attr:
        return self.attrs[ino]

    def save(self) -> None:
        for a in self.attrs.values():
            self.tx.touch_dir(a, force=True)
