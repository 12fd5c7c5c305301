"""Directory tree totals and quotas: what each directory's tree holds, kept as it
changes, and the limits on it (JuiceFS's `quota set/get/list/check` and `summary`).

Every directory keeps the totals of its tree: the entries below it at any depth (files
and directories; a file with two names counts twice) and the bytes of the regular files
they name. A mutation that changes them (a name added or removed, a file growing or
shrinking, a rename moving a tree) collects its changes in a TreeChange, which adds them
to the directory it happened in and to each ancestor. Finding the ancestors reads their
attrs, so a concurrent rename of any of them conflicts: a change never lands on a tree
the directory has left.

Outside quota'd trees a change is a blind-written delta per directory (`W` keys, never
read by mutations), so creates never conflict on a counter; maintenance folds them into
the directory's `T` key, and a summary adds the pending ones. A directory with a quota
has its totals updated in place instead, after the check: the transaction reads them,
so two creates under one quota conflict and the later one retries against a total that
includes the earlier. The engines' transactions are serializable, so a quota is never
exceeded, not even by one create (JuiceFS allows a small overshoot); the price is that
creates under one quota'd directory serialize, and every change reads its ancestors'
attrs.
"""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.types import ROOT_INO, Attr, FileType, Quota, Summary, TreeCheck


def _plus(a: Summary, b: Summary, sign: int = 1) -> Summary:
    return Summary(a.dirs + sign * b.dirs, a.files + sign * b.files, a.size + sign * b.size)


def _file_bytes(a: Attr) -> int:
    return a.size if a.type == FileType.REGULAR else 0


class TreeChange:
    """The tree-totals changes of one operation, netted per directory, then applied."""

    def __init__(self, tx: MetaTx) -> None:
        self.tx = tx
        self.deltas: dict[int, Summary] = {}
        self._chains: dict[int, list[int]] = {}

    def chain(self, directory: int) -> list[int]:
        """The directory and its ancestors up to the root."""
        chain = self._chains.get(directory)
        if chain is None:
            chain, ino = [directory], directory
            while ino != ROOT_INO:
                ino = self.tx.attr(ino).parent
                chain.append(ino)
            self._chains[directory] = chain
        return chain

    def add(self, directory: int, delta: Summary, sign: int = 1) -> "TreeChange":
        for ino in self.chain(directory):
            self.deltas[ino] = _plus(self.deltas.get(ino, Summary()), delta, sign)
        return self

    def add_entry(self, directory: int, a: Attr, sign: int = 1) -> "TreeChange":
        """A name of inode `a` added to (sign 1) or removed from (-1) `directory`; a
        directory brings or takes its whole tree."""
        if a.is_dir:
            return self.add(directory, _plus(Summary(dirs=1), totals(self.tx, a.ino)), sign)
        return self.add(directory, Summary(files=1, size=_file_bytes(a)), sign)

    def add_file_size(self, a: Attr, nbytes: int) -> "TreeChange":
        """Regular file `a` grew (or shrank) by `nbytes`: every directory naming it."""
        if nbytes:
            links = {a.parent: 1} if a.parent else self.tx.link_parents(a.ino)
            for parent, count in links.items():
                self.add(parent, Summary(size=nbytes * count))
        return self

    def apply(self) -> None:
        """Write the changes; EDQUOT if one would take a quota'd tree past its limit."""
        changed = {ino: d for ino, d in self.deltas.items() if d != Summary()}
        if not changed:
            return
        limits = self.tx.quotas_of(list(changed))
        for ino, delta in changed.items():
            if ino not in limits:
                self.tx.add_tree_delta(ino, delta)
                continue
            total = _plus(_take_pending(self.tx, ino), delta)
            _check(ino, *limits[ino], delta, total)
            self.tx.put_tree_stat(ino, total)


def _check(ino: int, max_bytes: int, max_inodes: int, delta: Summary, total: Summary) -> None:
    if delta.size > 0 and max_bytes and total.size > max_bytes:
        raise FsError(errno.EDQUOT, f"directory {ino}: its quota of {max_bytes} bytes "
                      f"would be exceeded ({total.size})")
    if delta.inodes > 0 and max_inodes and total.inodes > max_inodes:
        raise FsError(errno.EDQUOT, f"directory {ino}: its quota of {max_inodes} inodes "
                      f"would be exceeded ({total.inodes})")


def totals(tx: MetaTx, ino: int) -> Summary:
    """A directory's tree totals: the folded ones plus the pending deltas."""
    total = tx.tree_stat(ino)
    for _, delta in tx.tree_deltas(ino):
        total = _plus(total, delta)
    return total


def _take_pending(tx: MetaTx, ino: int) -> Summary:
    """Fold a directory's pending deltas into its totals now; returns them."""
    total = tx.tree_stat(ino)
    for key, delta in list(tx.tree_deltas(ino)):
        total = _plus(total, delta)
        tx.del_key(key)
    return total


def forget_dir(tx: MetaTx, ino: int) -> None:
    """An (empty) directory is removed: its deltas and quota go with it (drop_inode
    deletes its `T` key with its other keys)."""
    for key, _ in list(tx.tree_deltas(ino)):
        tx.del_key(key)
    tx.del_quota(ino)


# --- operations -----------------------------------------------------------------------

def summary(tx: MetaTx, *, ino: int) -> Summary:
    """du-like totals of the tree at `ino` (a file: itself)."""
    a = tx.attr(ino)
    if not a.is_dir:
        return Summary(files=1, size=_file_bytes(a))
    return totals(tx, ino)


def set_quota(tx: MetaTx, *, ino: int, max_bytes: int = 0, max_inodes: int = 0) -> Quota:
    """Set (replace) directory `ino`'s limits; 0 means no limit. A tree already past a
    new limit keeps what it has and can only shrink, as with JuiceFS."""
    tx.dir_attr(ino)
    if ino == ROOT_INO:
        raise FsError(errno.EINVAL, "the root has no directory quota: the volume's size "
                      "is the server's --total-bytes / --total-inodes")
    if max_bytes < 0 or max_inodes < 0:
        raise FsError(errno.EINVAL, "quota limits cannot be negative")
    used = _take_pending(tx, ino)
    tx.put_tree_stat(ino, used)
    tx.put_quota(ino, max_bytes, max_inodes)
    return Quota(ino, max_bytes, max_inodes, used.size, used.inodes)


def get_quota(tx: MetaTx, *, ino: int) -> Quota:
    tx.dir_attr(ino)
    limits = tx.quotas_of([ino]).get(ino)
    if limits is None:
        raise FsError(errno.ENOENT, f"directory {ino} has no quota")
    used = totals(tx, ino)
    return Quota(ino, *limits, used.size, used.inodes)


def delete_quota(tx: MetaTx, *, ino: int) -> None:
    get_quota(tx, ino=ino)
    tx.del_quota(ino)


def list_quotas(tx: MetaTx) -> list[Quota]:
    quotas = []
    for ino, max_bytes, max_inodes in tx.quotas():
        used = totals(tx, ino)
        quotas.append(Quota(ino, max_bytes, max_inodes, used.size, used.inodes))
    return quotas


def check_tree(tx: MetaTx, *, ino: int, repair: bool = False) -> TreeCheck:
    """Walk the tree at directory `ino` and compare with its kept totals; with `repair`,
    set the kept totals of it and of every directory below it to what the walk found."""
    tx.dir_attr(ino)
    found = walk(tx, ino)
    check = TreeCheck(ino, totals(tx, ino), found[ino])
    if repair and any(totals(tx, d) != walked for d, walked in found.items()):
        for d, walked in found.items():
            _take_pending(tx, d)
            tx.put_tree_stat(d, walked)
        check.repaired = True
    return check


def walk(tx: MetaTx, ino: int) -> dict[int, Summary]:
    """The tree totals of directory `ino` and of every directory below it, by reading
    every entry (and each file's attr, for its size)."""
    order, stack = [], [ino]
    found: dict[int, Summary] = {}
    subdirs: dict[int, list[int]] = {}
    while stack:
        d = stack.pop()
        order.append(d)
        subs, others = [], []
        for _, type_, child in tx.entries(d):
            (subs if type_ == FileType.DIRECTORY else others).append(child)
        size = sum(_file_bytes(a) for a in tx.attrs(others) if a is not None)
        found[d] = Summary(len(subs), len(others), size)
        subdirs[d] = subs
        stack += subs
    for d in reversed(order):           # children before their parents
        for sub in subdirs[d]:
            found[d] = _plus(found[d], found[sub])
    return found


def fold_tree_deltas(tx: MetaTx, *, keys: list[bytes]) -> int:
    """Fold those of the tree-totals deltas `keys` that still exist into their
    directories' `T` keys; returns how many. (Maintenance finds candidates without a
    transaction; point reads of them conflict with nothing but another fold.)"""
    by_dir: dict[int, Summary] = {}
    folded = 0
    for key, ino, delta in tx.tree_deltas_at(keys):
        by_dir[ino] = _plus(by_dir.get(ino, Summary()), delta)
        tx.del_key(key)
        folded += 1
    for ino, delta in by_dir.items():
        tx.put_tree_stat(ino, _plus(tx.tree_stat(ino), delta))
    return folded
