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
from metaserver.ops.quota import TreeChange, forget_dir
from metaserver.ops.remove import drop_link
from metaserver.types import Attr, Entry, RenameFlags

_KNOWN = int(RenameFlags.NOREPLACE | RenameFlags.EXCHANGE | RenameFlags.WHITEOUT)  # plain int for ~


def rename(tx: MetaTx, *, parent: int, name: bytes, new_parent: int, new_name: bytes,
           flags: int = 0) -> Entry:
    # Checks run in the order Linux's renameat2 runs them, so each case gets its errno.
    if flags & ~_KNOWN:
        raise FsError(errno.EINVAL, f"unknown rename flags {flags:#x}")
    if flags & RenameFlags.EXCHANGE and flags & (RenameFlags.NOREPLACE | RenameFlags.WHITEOUT):
        raise FsError(errno.EINVAL, "EXCHANGE excludes NOREPLACE and WHITEOUT")
    if flags & RenameFlags.WHITEOUT:
        raise FsError(errno.EOPNOTSUPP, "RENAME_WHITEOUT is not supported")
    check_name(name)
    check_name(new_name)
    tx.dir_attr(parent)
    tx.dir_attr(new_parent)
    src = tx.child(parent, name)
    found = tx.dentry(new_parent, new_name)
    dst = None if found is None else Entry(new_name, found[1], found[0], tx.attr(found[1]))
    exchange = bool(flags & RenameFlags.EXCHANGE)
    if dst is not None and flags & RenameFlags.NOREPLACE:
        raise FsError(errno.EEXIST, f"{quote(new_name)} exists")
    if dst is None and exchange:
        raise FsError(errno.ENOENT, f"EXCHANGE: no entry {quote(new_name)}")
    if parent != new_parent:
        _check_trap(tx, src, parent, dst, new_parent, exchange)
    if dst is not None and dst.ino == src.ino:      # two names of one inode: nothing to do
        return Entry(new_name, src.ino, src.type, src.attr)
    if exchange:
        _move_totals(tx, parent, src, new_parent, dst, exchange)
        _exchange(tx, parent, src, new_parent, dst)
        return Entry(new_name, src.ino, src.type, tx.attr(src.ino))
    if dst is not None:
        if src.attr.is_dir and not dst.attr.is_dir:
            raise FsError(errno.ENOTDIR, f"{quote(new_name)} is not a directory")
        if not src.attr.is_dir and dst.attr.is_dir:
            raise FsError(errno.EISDIR, f"{quote(new_name)} is a directory")
        if dst.attr.is_dir and not tx.is_empty_dir(dst.ino):
            raise FsError(errno.ENOTEMPTY, f"directory {quote(new_name)} is not empty")

    _move_totals(tx, parent, src, new_parent, dst, exchange)
    tx.del_dentry(parent, name)
    tx.put_dentry(new_parent, new_name, src.type, src.ino)
    parents = _Parents(tx, parent, new_parent)
    if dst is not None:
        if dst.attr.is_dir:
            forget_dir(tx, dst.ino)
            tx.drop_inode(dst.attr)
            parents.get(new_parent).nlink -= 1
        else:
            drop_link(tx, dst.attr, new_parent)
    _move(tx, src.attr, parent, new_parent, parents)
    parents.save()
    return Entry(new_name, src.ino, src.type, src.attr)


def _move_totals(tx: MetaTx, parent: int, src: Entry, new_parent: int, dst: Entry | None,
                 exchange: bool) -> None:
    """Directory stats and quota usage: moved entries (a directory with its tree) leave
    one directory for the other, a replaced entry leaves; EDQUOT if that takes a quota'd
    tree past its limit."""
    change = TreeChange(tx)
    if parent != new_parent:
        change.add_entry(parent, src.attr, -1).add_entry(new_parent, src.attr)
        if exchange:
            change.add_entry(new_parent, dst.attr, -1).add_entry(parent, dst.attr)
    if dst is not None and not exchange:
        change.add_entry(new_parent, dst.attr, -1)
    change.apply()


def _check_trap(tx: MetaTx, src: Entry, parent: int, dst: Entry | None, new_parent: int,
                exchange: bool) -> None:
    """Neither side may end up inside itself (Linux's lock_rename "trap"): moving a
    directory below itself is EINVAL; replacing an ancestor of the source is ENOTEMPTY
    (EINVAL for EXCHANGE, which would move that ancestor below itself)."""
    if src.attr.is_dir and tx.is_ancestor(src.ino, new_parent):
        raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
    if dst is not None and dst.attr.is_dir and tx.is_ancestor(dst.ino, parent):
        if exchange:
            raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
        raise FsError(errno.ENOTEMPTY, f"{quote(dst.name)} is an ancestor of the source")


def _exchange(tx: MetaTx, parent: int, src: Entry, new_parent: int, dst: Entry) -> None:
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
