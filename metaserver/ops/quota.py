"""Directory stats, summaries and quotas (JuiceFS's dirStats, `summary` and `quota
set/get/list/check`).

Every directory keeps stats of its own entries: how many files and directories it
holds and the bytes of the regular files among them. A mutation that changes them (a
name added or removed, a file growing or shrinking) blind-writes one delta per
directory (`W` keys, never read by mutations, so creates never conflict on a counter);
maintenance folds them into the directory's `T` key. A summary of a tree adds up the
stats of its directories: it reads every directory, and the entries only of those that
have subdirectories, never a file's attr; a quota'd directory's summary is one read.

A quota'd directory also keeps its whole tree's usage (`U`), updated in place by every
mutation below it, after the check against its limits. Finding the quota'd ancestors
reads the ancestors' attrs, so only when the namespace has a quota at all (the
`quotas` counter, one point read); a concurrent rename of an ancestor then conflicts,
so usage never lands on a tree the directory has left. The transaction reads the usage
it updates, so two creates under one quota conflict and the later retries against a
usage that includes the earlier: under the engines' serializable transactions a quota
is never exceeded, not even by one create (JuiceFS allows a small overshoot). The price:
creates under one quota'd directory serialize, and every mutation reads one counter.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from metaserver import schema
from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.types import ROOT_INO, Attr, FileType, Quota, Summary, TreeCheck

QUOTAS_COUNTER = "quotas"


def _require_stats(tx: MetaTx, what: str) -> None:
    # A namespace made before directory stats existed: they count only what changed
    # since the upgrade, until a check_tree repair from the root completes them.
    if not tx.counter(schema.STATS_COUNTER):
        raise FsError(errno.EOPNOTSUPP, f"{what} needs directory stats, which this namespace "
                      "(made before they were kept) does not have yet: build them once with "
                      "`metactl quota check --repair /` (a walk of the whole tree)")


def _plus(a: Summary, b: Summary, sign: int = 1) -> Summary:
    return Summary(a.dirs + sign * b.dirs, a.files + sign * b.files, a.size + sign * b.size)


def _file_bytes(a: Attr) -> int:
    return a.size if a.type == FileType.REGULAR else 0


class TreeChange:
    """The stats and quota-usage changes of one operation: what happened in which
    directory, netted per directory, then applied."""

    def __init__(self, tx: MetaTx) -> None:
        self.tx = tx
        self.direct: dict[int, Summary] = {}
        self.below: list[tuple[int, Attr | Summary, int]] = []  # (directory, what, sign)

    def add_entry(self, directory: int, a: Attr, sign: int = 1) -> "TreeChange":
        """A name of inode `a` added to (sign 1) or removed from (-1) `directory`; a
        directory brings or takes its whole tree."""
        own = Summary(dirs=1) if a.is_dir else Summary(files=1, size=_file_bytes(a))
        self.direct[directory] = _plus(self.direct.get(directory, Summary()), own, sign)
        self.below.append((directory, a if a.is_dir else own, sign))
        return self

    def add_file_size(self, a: Attr, nbytes: int) -> "TreeChange":
        """Regular file `a` grew (or shrank) by `nbytes`: every directory naming it."""
        if nbytes:
            links = {a.parent: 1} if a.parent else self.tx.link_parents(a.ino)
            for parent, count in links.items():
                grown = Summary(size=nbytes * count)
                self.direct[parent] = _plus(self.direct.get(parent, Summary()), grown)
                self.below.append((parent, grown, 1))
        return self

    def apply(self) -> None:
        """Write the changes; EDQUOT if one would take a quota'd tree past its limit."""
        for ino, delta in self.direct.items():
            if delta != Summary():
                self.tx.add_tree_delta(ino, delta)
        if not self.tx.counter(QUOTAS_COUNTER):
            return
        usage: dict[int, Summary] = {}
        moved: dict[tuple[int, int], int] = {}      # (quota'd dir, moved dir) -> net sign
        limits: dict[int, tuple[int, int]] = {}
        for directory, what, sign in self.below:
            chain = ancestors(self.tx, directory)
            limits.update(self.tx.quotas_of([i for i in chain if i not in limits]))
            for ino in (i for i in chain if i in limits):
                if isinstance(what, Summary):
                    usage[ino] = _plus(usage.get(ino, Summary()), what, sign)
                else:
                    moved[ino, what.ino] = moved.get((ino, what.ino), 0) + sign
        trees: dict[int, Summary] = {}              # a moved tree is summed only if it counts
        for (ino, tree), sign in moved.items():
            if sign:
                if tree not in trees:
                    trees[tree] = _plus(Summary(dirs=1), summary(self.tx, ino=tree))
                usage[ino] = _plus(usage.get(ino, Summary()), trees[tree], sign)
        for ino, delta in usage.items():
            if delta != Summary():
                total = _plus(self.tx.quota_usage(ino), delta)
                _check(ino, *limits[ino], delta, total)
                self.tx.put_quota_usage(ino, total)


def ancestors(tx: MetaTx, directory: int) -> list[int]:
    """The directory and its ancestors up to the root (reading each one's attr)."""
    chain = [directory]
    while directory != ROOT_INO:
        directory = tx.attr(directory).parent
        chain.append(directory)
    return chain


def _check(ino: int, max_bytes: int, max_inodes: int, delta: Summary, total: Summary) -> None:
    if delta.size > 0 and max_bytes and total.size > max_bytes:
        raise FsError(errno.EDQUOT, f"directory {ino}: its quota of {max_bytes} bytes "
                      f"would be exceeded ({total.size})")
    if delta.inodes > 0 and max_inodes and total.inodes > max_inodes:
        raise FsError(errno.EDQUOT, f"directory {ino}: its quota of {max_inodes} inodes "
                      f"would be exceeded ({total.inodes})")


def dir_stat(tx: MetaTx, ino: int) -> Summary:
    """A directory's own entries: the folded stats plus the pending deltas."""
    total = tx.tree_stat(ino)
    for _, delta in tx.tree_deltas(ino):
        total = _plus(total, delta)
    return total


def forget_dir(tx: MetaTx, ino: int) -> None:
    """An (empty) directory is removed: its deltas and quota go with it (drop_inode
    deletes its `T` and `U` keys with its other keys)."""
    for key, _ in list(tx.tree_deltas(ino)):
        tx.del_key(key)
    if tx.quotas_of([ino]):
        forget_quota(tx, ino)


def _subdirs(tx: MetaTx, ino: int) -> Iterator[int]:
    return (child for _, type_, child in tx.entries(ino) if type_ == FileType.DIRECTORY)


# --- operations -----------------------------------------------------------------------

def summary(tx: MetaTx, *, ino: int) -> Summary:
    """du-like totals of the tree at `ino` (a file: itself), from directory stats."""
    a = tx.attr(ino)
    if not a.is_dir:
        return Summary(files=1, size=_file_bytes(a))
    if tx.quotas_of([ino]):
        return tx.quota_usage(ino)
    _require_stats(tx, "summary")
    return _kept_summary(tx, ino)


def _kept_summary(tx: MetaTx, ino: int) -> Summary:
    """What directory `ino`'s stats and its subdirectories' add up to."""
    total, stack = Summary(), [ino]
    while stack:
        d = stack.pop()
        own = dir_stat(tx, d)
        total = _plus(total, own)
        if own.dirs:
            stack += _subdirs(tx, d)
    return total


def set_quota(tx: MetaTx, *, ino: int, max_bytes: int = 0, max_inodes: int = 0) -> Quota:
    """Set (replace) directory `ino`'s limits; 0 means no limit. A new quota's usage is
    the tree's summary. A tree already past a new limit keeps what it has and can only
    shrink, as with JuiceFS."""
    tx.dir_attr(ino)
    if ino == ROOT_INO:
        raise FsError(errno.EINVAL, "the root has no directory quota: the volume's size "
                      "is the server's --total-bytes / --total-inodes")
    if max_bytes < 0 or max_inodes < 0:
        raise FsError(errno.EINVAL, "quota limits cannot be negative")
    if tx.quotas_of([ino]):
        used = tx.quota_usage(ino)
    else:
        _require_stats(tx, "a quota")
        used = summary(tx, ino=ino)
        tx.put_quota_usage(ino, used)
        tx.set_counter(QUOTAS_COUNTER, tx.counter(QUOTAS_COUNTER) + 1)
    tx.put_quota(ino, max_bytes, max_inodes)
    return Quota(ino, max_bytes, max_inodes, used.size, used.inodes)


def get_quota(tx: MetaTx, *, ino: int) -> Quota:
    tx.dir_attr(ino)
    limits = tx.quotas_of([ino]).get(ino)
    if limits is None:
        raise FsError(errno.ENOENT, f"directory {ino} has no quota")
    used = tx.quota_usage(ino)
    return Quota(ino, *limits, used.size, used.inodes)


def delete_quota(tx: MetaTx, *, ino: int) -> None:
    get_quota(tx, ino=ino)
    forget_quota(tx, ino)


def forget_quota(tx: MetaTx, ino: int) -> None:
    tx.del_quota(ino)
    tx.set_counter(QUOTAS_COUNTER, tx.counter(QUOTAS_COUNTER) - 1)


def list_quotas(tx: MetaTx) -> list[Quota]:
    return [Quota(ino, max_bytes, max_inodes, used.size, used.inodes)
            for ino, max_bytes, max_inodes in tx.quotas()
            for used in [tx.quota_usage(ino)]]


def check_tree(tx: MetaTx, *, ino: int, repair: bool = False) -> TreeCheck:
    """Walk the tree at directory `ino` (every entry, every file's attr) and compare with
    its summary; with `repair`, set the stats of every directory in it, and the usage of
    every quota'd one, to what the walk found."""
    tx.dir_attr(ino)
    own, below = walk(tx, ino)
    quotad = tx.quotas_of(list(below))
    wrong = sum(dir_stat(tx, d) != own[d] for d in own) + \
        sum(tx.quota_usage(d) != below[d] for d in quotad)
    kept = tx.quota_usage(ino) if ino in quotad else _kept_summary(tx, ino)
    check = TreeCheck(ino, kept, below[ino], wrong)
    if repair and wrong:
        for d, stat in own.items():
            for key, _ in list(tx.tree_deltas(d)):
                tx.del_key(key)
            tx.put_tree_stat(d, stat)
        for d in quotad:
            tx.put_quota_usage(d, below[d])
        check.repaired = True
    if repair and ino == ROOT_INO and not tx.counter(schema.STATS_COUNTER):
        tx.set_counter(schema.STATS_COUNTER, 1)      # every directory's stats are now complete
        check.repaired = True
    return check


def walk(tx: MetaTx, ino: int) -> tuple[dict[int, Summary], dict[int, Summary]]:
    """Every directory of the tree at `ino`: its own entries' stats, and its tree's
    totals, found by reading every entry and each file's attr."""
    order, stack = [], [ino]
    own: dict[int, Summary] = {}
    subdirs: dict[int, list[int]] = {}
    while stack:
        d = stack.pop()
        order.append(d)
        subs, others = [], []
        for _, type_, child in tx.entries(d):
            (subs if type_ == FileType.DIRECTORY else others).append(child)
        size = sum(_file_bytes(a) for a in tx.attrs(others) if a is not None)
        own[d] = Summary(len(subs), len(others), size)
        subdirs[d] = subs
        stack += subs
    below = dict(own)
    for d in reversed(order):           # children before their parents
        for sub in subdirs[d]:
            below[d] = _plus(below[d], below[sub])
    return own, below


def fold_tree_deltas(tx: MetaTx, *, keys: list[bytes]) -> int:
    """Fold those of the stats deltas `keys` that still exist into their directories'
    `T` keys; returns how many. (Maintenance finds candidates without a transaction;
    point reads of them conflict with nothing but another fold.)"""
    by_dir: dict[int, Summary] = {}
    folded = 0
    for key, ino, delta in tx.tree_deltas_at(keys):
        by_dir[ino] = _plus(by_dir.get(ino, Summary()), delta)
        tx.del_key(key)
        folded += 1
    for ino, delta in by_dir.items():
        tx.put_tree_stat(ino, _plus(tx.tree_stat(ino), delta))
    return folded
