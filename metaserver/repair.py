"""repair: fix what fsck reported, where the right state is certain, one transaction per fix.

`repair(engine, report)` takes an fsck report and works in four passes, each fix its own
transaction (change-record header: operation "repair") that re-reads what it changes:

1. entries and stray keys: a missing root is recreated; keys of an inode without attr,
   and keys its type cannot have, are deleted; entries naming a missing inode or the
   root are removed; entry types are set to their inode's; a directory named twice
   keeps the entry in its attr.parent's directory; each cycle is cut by removing the
   entry of its lowest-numbered directory (its "entry point"), which pass 3 reattaches.
2. nextInode is raised above every inode (before pass 3 allocates one).
3. every inode the report names, or pass 1 touched, is settled from the entries that
   name it (one scan finds them): an orphan is reattached as /lost+found/<ino> (made if
   absent); nlink, attr.parent and the `P` link-parent keys are recomputed.
4. the usage counters are set so that with the pending deltas they equal the inodes and
   regular-file bytes found (one transaction that scans them, so it is exact).
5. directory stats: deltas and quotas of non-directories are deleted; if fsck found
   stats or quota usage wrong, or any fix above changed the namespace, every directory's
   stats and quota usage are set to what a walk from the root finds (one transaction:
   exact, but as big as the tree).

Left alone (reported in RepairSummary.left): undecodable keys, symlinks without a
target, a root that is not a directory. Meant for a quiet namespace (e.g. `metactl fsck
--repair` on a stopped server's engine): every fix is transactional, so writers running
meanwhile are never corrupted, but they can make a fix stale; run fsck again then.
"""

from __future__ import annotations

import itertools
import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engines import transactional
from engines.contract import Engine, Txn
from metaserver import schema
from metaserver.errors import FsError, quote
from metaserver.ops import admin, create, quota
from metaserver.ops.metatx import MetaTx, OpContext
from metaserver.types import ROOT_INO, Attr, FileType

LOST_FOUND = b"lost+found"
REPAIR_HEADER = schema.change_header("repair")
_DIR = FileType.DIRECTORY
# The kinds whose inodes need their entries looked at in pass 1. Unreachable directories
# are among them: a loop hidden behind a second entry (which pass 1 removes) shows as
# unreachable, not as a cycle.
_ENTRY_KINDS = {"dangling_dentry", "dentry_type", "dir_links", "cycle", "unreachable", "root"}
_TREE_KINDS = {"tree_totals", "stray_tree"}      # fixed in pass 5 alone
_LEFT_ALONE = {"undecodable": "undecodable data is not guessed at",
               "missing_target": "a symlink's target cannot be recovered"}


class Finding(Protocol):
    """One fsck.Problem: the fields repair reads."""
    kind: str
    ino: int


class Findings(Protocol):
    """An fsck.Report. (fsck and repair are independent in the layers: named, not imported.)"""
    problems: Sequence[Finding]


@dataclass
class RepairSummary:
    fixed: list[str] = field(default_factory=list)     # what was changed, one line each
    left: list[str] = field(default_factory=list)      # problems not repaired, and why
    transactions: int = 0

    def __str__(self) -> str:
        return "\n".join([f"repaired: {line}" for line in self.fixed]
                         + [f"not repaired: {line}" for line in self.left])


class _CannotRepair(Exception):
    """This fix is not safe here; the reason goes to RepairSummary.left."""


def repair(engine: Engine, report: Findings) -> RepairSummary:
    """Fix what is safe to fix of the problems in `report` (see the module docstring)."""
    return _Repairer(engine).run(report.problems)


class _Repairer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.summary = RepairSummary()
        self.touched: set[int] = set()      # inodes whose entries pass 1 changed
        self.writer_id = random.getrandbits(63)
        self._delta_seq = itertools.count(1).__next__
        self._lost_found = 0
        self._lost_found_error = ""

    def run(self, problems: Sequence[Finding]) -> RepairSummary:
        by_kind: dict[str, set[int]] = {}
        for p in problems:
            by_kind.setdefault(p.kind, set()).add(p.ino)
        for kind, reason in _LEFT_ALONE.items():
            self.summary.left += [f"{kind} ino={ino}: {reason}" for ino in by_kind.get(kind, ())]
        if "root" in by_kind:
            self.fix("root", self.fix_root)
        for ino in sorted(by_kind.get("stray_key", ())):
            self.fix(f"stray keys of inode {ino}", lambda tx, ino=ino: self.drop_stray_keys(tx, ino))
        self.fix_entries({ino for kind in _ENTRY_KINDS for ino in by_kind.get(kind, ())})
        if "next_inode" in by_kind:
            self.fix("nextInode", fix_next_inode)
        self.settle({p.ino for p in problems
                     if p.ino and p.kind not in _LEFT_ALONE and p.kind not in _TREE_KINDS}
                    | self.touched)
        if "usage" in by_kind:
            self.fix("usage counters", fix_usage)
        for ino in sorted(by_kind.get("stray_tree", ())):
            self.fix(f"tree keys of inode {ino}", lambda tx, ino=ino: drop_tree_keys(tx, ino))
        if "tree_totals" in by_kind or self.summary.transactions:
            self.fix("tree totals", fix_tree_totals)
        return self.summary

    # --- running one fix --------------------------------------------------------------
    def fix(self, what: str, body: Callable[[MetaTx], Iterable[str]]) -> None:
        """Run `body` in a transaction of its own, retried on conflicts; record the
        changes it names, or why it could not."""
        try:
            changes = transactional.run(self.engine, lambda txn: self._attempt(txn, body),
                                        header=REPAIR_HEADER).value
        except (_CannotRepair, FsError) as exc:
            self.summary.left.append(f"{what}: {exc}")
            return
        except (struct.error, ValueError) as exc:
            self.summary.left.append(f"{what}: undecodable data ({exc})")
            return
        self.summary.fixed += changes
        self.summary.transactions += bool(changes)

    def _attempt(self, txn: Txn, body: Callable[[MetaTx], Iterable[str]]) -> list[str]:
        # An id straight from the counter, in this transaction (servers take theirs from
        # it in blocks, so none of theirs can be handed out twice).
        tx = MetaTx(txn, OpContext(
            now_ns=time.time_ns(), writer_id=self.writer_id, delta_seq=self._delta_seq,
            alloc_ino=lambda: admin.reserve_ids(tx, counter="nextInode", count=1)))
        changes = list(body(tx))
        tx.flush_accounting()
        return changes

    # --- pass 1: entries and stray keys -------------------------------------------------
    def fix_root(self, tx: MetaTx) -> Iterable[str]:
        root = tx.attrs([ROOT_INO])[0]
        if root is None:
            now = tx.now
            tx.put_attr(Attr(ROOT_INO, _DIR, 0o755, 0, 0, now, now, now, 2, 0, 0, ROOT_INO))
            tx.account(0, 1)
            self.touched.add(ROOT_INO)
            yield "recreated the missing root directory"
        elif not root.is_dir:
            raise _CannotRepair(f"the root is a {root.type.name}, not a directory")

    def drop_stray_keys(self, tx: MetaTx, ino: int) -> Iterable[str]:
        a = tx.attrs([ino])[0]
        allowed = schema.allowed_tags(a.type) if a else frozenset()
        dropped: Counter[str] = Counter()
        for key, value in list(tx.txn.scan(*schema.inode_range(ino))):
            tag = schema.parse_inode_key(key).tag
            if tag in allowed:
                continue
            if tag == schema.ENTRY_TAG:
                self.touched.add(schema.decode_dentry(value)[1])
            tx.txn.delete(key)
            dropped[tag.decode(errors="replace")] += 1
        if dropped:
            owner = f"{a.type.name.lower()} {ino}" if a else f"missing inode {ino}"
            yield f"deleted keys of {owner}: " + ", ".join(
                f"{n} {tag!r}" for tag, n in sorted(dropped.items()))

    def fix_entries(self, inos: set[int]) -> None:
        if not inos:
            return
        naming = entries_naming(self.engine, inos)
        attrs = self._attrs(inos)
        kept = {ino: _kept_entry(attrs.get(ino), entries) for ino, entries in naming.items()}
        cut = _cycle_entry_points(kept)
        for ino in sorted(inos):
            self.fix(f"entries naming inode {ino}", lambda tx, ino=ino: self.fix_entries_of(
                tx, ino, naming.get(ino, []), kept.get(ino), cut_entry=ino in cut))

    def _attrs(self, inos: set[int]) -> dict[int, Attr]:
        """The attrs of those of `inos` that have one that decodes."""
        order = sorted(inos)
        with self.engine.snapshot() as snapshot:
            values = snapshot.get_many([schema.attr_key(ino) for ino in order])
        found = {}
        for ino, value in zip(order, values):
            try:
                found[ino] = schema.decode_attr(ino, value)
            except (TypeError, struct.error, ValueError):   # absent, or left to its report
                continue
        return found

    def fix_entries_of(self, tx: MetaTx, ino: int, entries: list[tuple[int, bytes]],
                       kept: tuple[int, bytes] | None, cut_entry: bool) -> Iterable[str]:
        """Make the entries naming `ino` right: none for a missing inode or the root,
        one for a directory (none if it is a cycle's entry point), each of its type."""
        a = tx.attrs([ino])[0]
        for holder, name in entries:
            found = tx.dentry(holder, name)
            if found is None or found[1] != ino:
                continue        # changed since the scan
            where = f"{holder}/{quote(name)}"
            if a is None or ino == ROOT_INO or (a.is_dir and ((holder, name) != kept or cut_entry)):
                tx.del_dentry(holder, name)
                self.touched.update((holder, ino))
                yield f"removed entry {where} naming " + (
                    f"missing inode {ino}" if a is None else
                    "the root" if ino == ROOT_INO else
                    f"directory {ino}" + (" (cutting a cycle)" if cut_entry else
                                          " (a directory has one name)"))
            elif found[0] != a.type:
                tx.put_dentry(holder, name, a.type, ino)
                self.touched.add(holder)
                yield f"set entry {where} to type {a.type.name.lower()}"

    # --- pass 3: nlink, parents, link-parent keys, orphans --------------------------------
    def settle(self, inos: set[int]) -> None:
        if not inos:
            return
        naming = entries_naming(self.engine, inos)
        if self._attrs({ino for ino in inos if ino not in naming and ino != ROOT_INO}):
            self.make_lost_found()      # before, not inside, the transactions that use it
        for ino in sorted(inos):
            self.fix(f"inode {ino}", lambda tx, ino=ino: self.settle_inode(
                tx, ino, naming.get(ino, [])))

    def settle_inode(self, tx: MetaTx, ino: int, entries: list[tuple[int, bytes]]) -> Iterable[str]:
        a = tx.attrs([ino])[0]
        if a is None or (ino == ROOT_INO and not a.is_dir):
            return
        live = [(h, n) for h, n in entries if _names(tx, h, n, ino)]
        if not live and ino != ROOT_INO:
            live = [self.reattach(tx, a)]
            yield f"reattached orphan inode {ino} as /{LOST_FOUND.decode()}/{live[0][1].decode()}"
        if a.is_dir:
            nlink = 2 + sum(1 for _, type_, _ in tx.entries(ino) if type_ == _DIR)
            parent = ROOT_INO if ino == ROOT_INO else live[0][0]
        else:
            nlink = len(live)
            parent = live[0][0] if nlink == 1 else 0
            yield from self.settle_link_parents(tx, ino, Counter(h for h, _ in live) if nlink > 1 else {})
        changed = [f"{name} {old} -> {new}" for name, old, new in
                   (("nlink", a.nlink, nlink), ("parent", a.parent, parent)) if old != new]
        if changed:
            yield f"inode {ino}: " + ", ".join(changed)
            a.nlink, a.parent = nlink, parent
            tx.put_attr(a)

    @staticmethod
    def settle_link_parents(tx: MetaTx, ino: int, want: dict[int, int]) -> Iterable[str]:
        have = tx.link_parents(ino)
        if have == want:
            return
        for parent in have.keys() - want.keys():
            tx.txn.delete(schema.parent_key(ino, parent))
        for parent, count in want.items():
            tx.txn.put(schema.parent_key(ino, parent), schema.encode_count(count))
        yield f"inode {ino}: link parents {dict(sorted(have.items()))} -> {dict(sorted(want.items()))}"

    def reattach(self, tx: MetaTx, a: Attr) -> tuple[int, bytes]:
        """Give orphan `a` the entry /lost+found/<ino> (another suffix if that is taken)."""
        if not self._lost_found:
            raise _CannotRepair(self._lost_found_error)
        lost_found = self._lost_found
        base = name = str(a.ino).encode()
        suffix = 0
        while (found := tx.dentry(lost_found, name)) is not None and found[1] != a.ino:
            suffix += 1
            name = base + f".{suffix}".encode()
        if found is None:
            tx.put_dentry(lost_found, name, a.type, a.ino)
            holder = tx.dir_attr(lost_found)
            holder.nlink += a.is_dir
            tx.touch_dir(holder, force=True)
        return lost_found, name

    def make_lost_found(self) -> None:
        """Find /lost+found, or make it as mkdir would."""
        made: list[int] = []
        self.fix("/lost+found", lambda tx: self._make_lost_found(tx, made))
        if made:
            self._lost_found = made[0]
        else:
            self._lost_found_error = f"/{LOST_FOUND.decode()} is not available"

    @staticmethod
    def _make_lost_found(tx: MetaTx, made: list[int]) -> Iterable[str]:
        made.clear()
        found = tx.dentry(ROOT_INO, LOST_FOUND)
        if found is not None:
            if found[0] != _DIR:
                raise _CannotRepair(f"/{LOST_FOUND.decode()} is not a directory")
            made.append(found[1])
            return
        made.append(create.mkdir(tx, parent=ROOT_INO, name=LOST_FOUND, mode=0o700).ino)
        yield f"made /{LOST_FOUND.decode()} (inode {made[0]})"


# --- pieces without state ------------------------------------------------------------------

def entries_naming(engine: Engine, inos: set[int]) -> dict[int, list[tuple[int, bytes]]]:
    """(directory, name) of every entry naming one of `inos`: one scan of all entries."""
    naming: dict[int, list[tuple[int, bytes]]] = {}
    _, pairs = engine.snapshot_scan(schema.INODE_PREFIX, schema.COUNTER_PREFIX)
    for key, value in pairs:
        parts = schema.parse_inode_key(key)
        if parts.tag == schema.ENTRY_TAG and len(value) == 9:
            ino = int.from_bytes(value[1:], "big")  # the dentry's ino, whatever its type byte
            if ino in inos:
                naming.setdefault(ino, []).append((parts.ino, parts.rest))
    return naming


def _names(tx: MetaTx, holder: int, name: bytes, ino: int) -> bool:
    """Whether entry `name` of directory `holder` still names `ino`."""
    found = tx.dentry(holder, name)
    return found is not None and found[1] == ino


def _kept_entry(a: Attr | None, entries: list[tuple[int, bytes]]) -> tuple[int, bytes] | None:
    """The one entry a directory keeps: the one in its attr.parent, else the first."""
    if a is None or not a.is_dir or not entries:
        return None
    return next((e for e in entries if e[0] == a.parent), entries[0])


def _cycle_entry_points(kept: dict[int, tuple[int, bytes] | None]) -> set[int]:
    """The lowest-numbered directory of each loop among the directories in `kept`,
    following each one's kept entry up to the directory holding it."""
    points: set[int] = set()
    done: set[int] = set()
    for start in sorted(kept):
        path: dict[int, int] = {}       # directory -> its position on this walk
        cur: int | None = start
        while cur in kept and cur not in done and cur not in path:
            path[cur] = len(path)
            entry = kept.get(cur)
            cur = entry[0] if entry else None
        done.update(path)
        if cur in path:
            points.add(min(list(path)[path[cur]:]))
    return points


def fix_next_inode(tx: MetaTx) -> Iterable[str]:
    """nextInode above the highest inode that has any key."""
    current = tx.counter("nextInode")
    top = next(tx.txn.scan(schema.INODE_PREFIX, schema.COUNTER_PREFIX, limit=1, reverse=True), None)
    wanted = schema.parse_inode_key(top[0]).ino + 1 if top else ROOT_INO + 1
    if current < wanted:
        tx.set_counter("nextInode", wanted)
        yield f"nextInode {current} -> {wanted}"


def drop_tree_keys(tx: MetaTx, ino: int) -> Iterable[str]:
    """Stats deltas and a quota of an inode that is not a directory; a quota usage
    without a quota."""
    a = tx.attrs([ino])[0]
    if a is None or not a.is_dir:
        for key, _ in list(tx.tree_deltas(ino)):
            tx.del_key(key)
        tx.del_quota(ino)
        yield f"inode {ino}: stats deltas and quota deleted"
    elif not tx.quotas_of([ino]):
        tx.del_quota(ino)
        yield f"inode {ino}: quota usage without a quota deleted"


def fix_tree_totals(tx: MetaTx) -> Iterable[str]:
    """Every directory's stats and quota usage set to what a walk from the root finds,
    and the quotas counter to the number of quotas."""
    check = quota.check_tree(tx, ino=ROOT_INO, repair=True)
    if check.repaired:
        yield f"stats of {check.wrong} directories (or their quota usage) set from a walk"
    count, want = tx.counter(quota.QUOTAS_COUNTER), len(list(tx.quotas()))
    if count != want:
        tx.set_counter(quota.QUOTAS_COUNTER, want)
        yield f"quotas counter {count} -> {want}"


def fix_usage(tx: MetaTx) -> Iterable[str]:
    """usedInodes/usedBytes such that with the pending deltas they count what exists."""
    inodes = nbytes = 0
    for key, value in tx.txn.scan(schema.INODE_PREFIX, schema.COUNTER_PREFIX):
        parts = schema.parse_inode_key(key)
        if parts.tag == schema.ATTR_TAG and not parts.rest:
            inodes += 1
            a = schema.decode_attr(0, value)
            nbytes += a.size if a.type == FileType.REGULAR else 0
    delta_bytes, delta_inodes = tx.pending_usage()
    for name, want, total in (("usedInodes", inodes - delta_inodes, inodes),
                              ("usedBytes", nbytes - delta_bytes, nbytes)):
        current = tx.counter(name)
        if current != want:
            tx.set_counter(name, want)
            yield f"{name} {current} -> {want} (with the pending deltas: {total})"
