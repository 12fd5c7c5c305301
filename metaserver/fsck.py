"""fsck: read a whole namespace from an engine and report every broken invariant.

Read-only. One point-in-time scan (Engine.snapshot_scan) streams inodes, counters,
quotas, usage deltas and directory-stats deltas in key order, so the result is exact
even while others write: it is the state after change record `Report.seq`. Memory stays proportional to the number of
inodes: per inode only a few integers are kept (its attr fields, how many entries name
it and from where, link-parent sums), never names.

Problem kinds (each reported with the inode it concerns; 0 for namespace-wide ones):
  undecodable        a key or value that does not parse
  stray_key          a key of an inode without attr, or that its type cannot have
                     (entries under a non-directory, chunks on a non-regular file,
                     a target on a non-symlink, link parents on a directory)
  dangling_dentry    entries naming an inode that does not exist
  dentry_type        an entry's type differs from its inode's type
  root               the root is missing, not a directory, named by an entry, or not
                     its own parent
  nlink              nlink differs from the entries (dirs: 2 + subdirectories)
  dir_links          a directory named by more than one entry
  dir_parent         a directory's attr.parent is not the directory holding its entry
  file_parent        a file with one entry whose attr.parent is not the directory holding it
  link_parents       a file with several entries whose attr.parent is set, or whose `P` keys
                     do not count its entries per directory; or `P` keys on a one-entry file
                     (one or several: the entries that exist, nlink is checked on its own)
  missing_target     a symlink without its target
  orphan             an inode (not the root) that no entry names (an open-unlinked file
                     a client session holds, nlink 0 with an `H` key, is not one)
  cycle              a directory on a loop of entries that never reaches the root
  unreachable        a directory whose chain of parents ends at an orphan or a cycle
  next_inode         the nextInode counter is not above every inode number
  usage              statfs used inodes / bytes differ from the inodes / regular file sizes
  tree_totals        a directory's stats (`T` plus pending `W` deltas) differ from its own
                     entries and their regular files' sizes (once they are complete:
                     the `treeStats` counter), or a quota'd directory's
                     usage (`U`) from its whole tree's, or the `quotas` counter from the
                     quotas (checked only in an otherwise sound namespace: they summarize
                     it, and repair recomputes them after any other fix)
  stray_tree         stats deltas or a quota of an inode that is not a directory, or a
                     quota usage without a quota
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby

from engines.contract import Engine
from metaserver import schema
from metaserver.types import ROOT_INO, FileType, Summary

_MASK = (1 << 64) - 1
_DIR = FileType.DIRECTORY
_MIXED = -1                     # entries naming one inode disagree about its type


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    ino: int
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} ino={self.ino}" + (f": {self.detail}" if self.detail else "")


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    inodes: int = 0
    dirs: int = 0
    files: int = 0              # every inode that is not a directory
    seq: int = 0                # the change sequence of the state checked

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def add(self, kind: str, ino: int, detail: str = "") -> None:
        self.problems.append(Problem(kind, ino, detail))

    def __str__(self) -> str:
        head = f"{self.inodes} inodes ({self.dirs} dirs, {self.files} files)"
        return "\n".join([head + (": ok" if self.ok else f": {len(self.problems)} problems")]
                         + [f"  {p}" for p in self.problems])


class _Node:
    """What fsck remembers about one inode: integers only."""
    __slots__ = ("type", "nlink", "parent", "size", "refs", "dtype", "last_parent",
                 "ref_hash", "subdirs", "p_count", "p_hash", "p_keys", "has_target", "held",
                 "subfiles", "links", "kept", "usage")

    def __init__(self) -> None:
        self.type = 0           # 0 until its attr is seen
        self.nlink = self.parent = self.size = 0
        self.refs = 0           # entries naming this inode ...
        self.dtype = 0          # ... the type they claim (_MIXED if they disagree)
        self.last_parent = 0    # ... a directory holding one of them
        self.ref_hash = 0       # ... sum of _h(holding directory) over them
        self.subdirs = 0        # entries of type directory inside this inode
        self.p_count = self.p_hash = self.p_keys = 0    # the same two sums from `P` keys
        self.has_target = False
        self.held = False       # a client session holds it open (`H` key)
        self.subfiles = 0       # entries of other types inside this inode
        self.links: list[tuple[int, int]] | None = None     # (parent, count) of `P` keys
        self.kept: Summary | None = None    # a directory's `T` plus its `W` deltas
        self.usage: Summary | None = None   # a quota'd directory's `U`


def _h(ino: int) -> int:
    """splitmix64: equal multisets of parents give equal sums, others almost never."""
    z = (ino + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class _Checker:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.nodes: dict[int, _Node] = {}
        self.counters: dict[bytes, bytes] = {}
        self.used_bytes = self.used_inodes = 0      # the usage deltas, summed
        self.tree_keyed: set[int] = set()           # inodes with `W` or `Q` keys
        self.quotas: set[int] = set()               # inodes with `Q` keys
        self.report = Report()

    def node(self, ino: int) -> _Node:
        n = self.nodes.get(ino)
        if n is None:
            n = self.nodes[ino] = _Node()
        return n

    def run(self) -> Report:
        self.report.seq, pairs = self.engine.snapshot_scan(schema.INODE_PREFIX,
                                                           schema.TREE_DELTA_END)
        for prefix, group in groupby(pairs, key=lambda pair: pair[0][:1]):
            if prefix == schema.INODE_PREFIX:
                self.scan_inodes(group)
            elif prefix == schema.COUNTER_PREFIX:
                self.counters.update(group)
            elif prefix == schema.DELTA_PREFIX:
                for key, value in group:
                    try:
                        nbytes, inodes = schema.decode_delta(value)
                    except struct.error as exc:
                        self.report.add("undecodable", 0, f"{key!r}: {exc}")
                        continue
                    self.used_bytes += nbytes
                    self.used_inodes += inodes
            elif prefix == schema.TREE_DELTA_PREFIX:
                for key, value in group:
                    ino = schema.tree_delta_ino(key)
                    self.tree_keyed.add(ino)
                    try:
                        self.keep(ino, schema.decode_tree(value))
                    except struct.error as exc:
                        self.report.add("undecodable", ino, f"{key!r}: {exc}")
            elif prefix == schema.QUOTA_PREFIX:
                self.quotas.update(schema.quota_ino(key) for key, _ in group)
                self.tree_keyed |= self.quotas
        self.check_inodes()
        self.check_reachable()
        self.check_counters()
        self.check_trees()
        return self.report

    def keep(self, ino: int, stat: Summary) -> None:
        n = self.node(ino)
        kept = n.kept or Summary()
        n.kept = Summary(kept.dirs + stat.dirs, kept.files + stat.files, kept.size + stat.size)

    # --- pass 1: the inode keys, one inode's keys at a time ------------------------------
    def scan_inodes(self, pairs: Iterator[tuple[bytes, bytes]]) -> None:
        for ino, keys in groupby(pairs, key=lambda pair: schema.parse_inode_key(pair[0]).ino):
            tags: dict[bytes, int] = {}
            for key, value in keys:
                parts = schema.parse_inode_key(key)
                tags[parts.tag] = tags.get(parts.tag, 0) + 1
                try:
                    self.take(ino, parts, key, value)
                except (struct.error, ValueError) as exc:
                    self.report.add("undecodable", ino, f"{key!r}: {exc}")
            self.end_inode(ino, tags)

    def take(self, ino: int, parts: schema.InodeKey, key: bytes, value: bytes) -> None:
        tag = parts.tag
        if tag == schema.ATTR_TAG:
            if parts.rest:
                raise ValueError("attr key with a suffix")
            a = schema.decode_attr(ino, value)
            n = self.node(ino)
            n.type, n.nlink, n.parent, n.size = a.type, a.nlink, a.parent, a.size
        elif tag == schema.ENTRY_TAG:
            type_, child = schema.decode_dentry(value)
            c = self.node(child)
            c.refs += 1
            c.dtype = type_ if c.dtype in (0, type_) else _MIXED
            c.last_parent = ino
            c.ref_hash = (c.ref_hash + _h(ino)) & _MASK
            if type_ == _DIR:
                self.node(ino).subdirs += 1
            else:
                self.node(ino).subfiles += 1
        elif tag == schema.PARENT_TAG:
            count = schema.decode_count(value)
            n = self.node(ino)
            n.p_keys += 1
            n.p_count += count
            n.p_hash = (n.p_hash + count * _h(schema.parent_of_key(key))) & _MASK
            n.links = (n.links or []) + [(schema.parent_of_key(key), count)]
        elif tag == schema.SYMLINK_TAG:
            self.node(ino).has_target = True
        elif tag == schema.HOLD_TAG:
            self.node(ino).held = True
        elif tag == schema.TREE_TAG:
            self.keep(ino, schema.decode_tree(value))
        elif tag == schema.USAGE_TAG:
            self.node(ino).usage = schema.decode_tree(value)
        elif tag not in (schema.CHUNK_TAG, schema.XATTR_TAG, schema.LOCK_TAG):
            raise ValueError(f"unknown key tag {tag!r}")

    def end_inode(self, ino: int, keys: dict[bytes, int]) -> None:
        """Checks that need only this inode's own keys."""
        n = self.nodes.get(ino)
        type_ = n.type if n else 0
        if not type_:
            self.report.add("stray_key", ino, f"keys of a missing inode: {_tags(keys)}")
            return
        allowed = schema.allowed_tags(type_)
        extra = {t: c for t, c in keys.items() if t not in allowed}
        if extra:
            self.report.add("stray_key", ino, f"a {FileType(type_).name} with {_tags(extra)}")
        if type_ == FileType.SYMLINK and not n.has_target:
            self.report.add("missing_target", ino)

    # --- pass 2: every inode against the entries that name it ---------------------------
    def check_inodes(self) -> None:
        r = self.report
        root = self.nodes.get(ROOT_INO)
        if root is None or root.type != _DIR or root.parent != ROOT_INO or root.refs:
            r.add("root", ROOT_INO, "missing" if root is None or not root.type else
                  f"type {root.type}, parent {root.parent}, named by {root.refs} entries")
        for ino, n in self.nodes.items():
            if not n.type:
                if n.refs:
                    r.add("dangling_dentry", ino,
                          f"{n.refs} entries, one in directory {n.last_parent}")
                continue
            r.inodes += 1
            if n.refs and n.dtype != n.type:
                r.add("dentry_type", ino, f"inode is {FileType(n.type).name}, entries say "
                      + ("different types" if n.dtype == _MIXED else FileType(n.dtype).name))
            if ino != ROOT_INO and not n.refs and not (n.held and n.nlink == 0):
                r.add("orphan", ino, "no entry names it")
            if n.type == _DIR:
                r.dirs += 1
                self.check_dir(ino, n)
            else:
                r.files += 1
                self.check_file(ino, n)

    def check_dir(self, ino: int, n: _Node) -> None:
        r = self.report
        if n.nlink != 2 + n.subdirs:
            r.add("nlink", ino, f"nlink {n.nlink}, expected 2 + {n.subdirs} subdirectories")
        if ino == ROOT_INO:
            return
        if n.refs > 1:
            r.add("dir_links", ino, f"named by {n.refs} entries")
        elif n.refs == 1 and n.parent != n.last_parent:
            r.add("dir_parent", ino, f"attr.parent {n.parent}, entry in {n.last_parent}")

    def check_file(self, ino: int, n: _Node) -> None:
        r = self.report
        if n.nlink != n.refs:
            r.add("nlink", ino, f"nlink {n.nlink}, named by {n.refs} entries")
        if n.refs == 1:
            if n.parent != n.last_parent:
                r.add("file_parent", ino, f"attr.parent {n.parent}, entry in {n.last_parent}")
            if n.p_keys:
                r.add("link_parents", ino, f"{n.p_keys} link-parent keys on a one-link file")
        elif n.refs > 1 and (n.parent or n.p_count != n.refs or n.p_hash != n.ref_hash):
            r.add("link_parents", ino, f"attr.parent {n.parent}; P keys count {n.p_count} links "
                  f"for {n.refs} entries" + ("" if n.p_hash == n.ref_hash else
                                             ", not from the same directories"))

    # --- pass 3: every directory's chain of parents reaches the root --------------------
    def check_reachable(self) -> None:
        reaches, lost, walking = 1, 2, 3
        state = {ROOT_INO: reaches}
        for start, n in self.nodes.items():
            if n.type != _DIR or start in state:
                continue
            path: list[int] = []
            cur: int | None = start
            while cur not in state:
                state[cur] = walking
                path.append(cur)
                node = self.nodes[cur]
                up = self.nodes.get(node.last_parent) if node.refs else None
                if up is None or up.type != _DIR:   # orphan, or named from outside the tree
                    cur = None
                    break
                cur = node.last_parent
            outcome = lost if cur is None else state[cur]
            if outcome == walking:                  # came back into this walk: a loop
                loop = path[path.index(cur):]
                for ino in loop:
                    self.report.add("cycle", ino, f"loop of {len(loop)} directories")
                    state[ino] = lost
                outcome = lost
            for ino in path:
                if state[ino] == walking:
                    state[ino] = outcome
                    if outcome == lost and self.nodes[ino].refs:    # orphans are reported already
                        self.report.add("unreachable", ino, "its parents never reach the root")

    # --- pass 4: counters ----------------------------------------------------------------
    def counter(self, name: str) -> int:
        key = schema.counter_key(name)
        try:
            return schema.decode_i64(self.counters.get(key))
        except struct.error as exc:
            self.report.add("undecodable", 0, f"{key!r}: {exc}")
            return 0

    def check_counters(self) -> None:
        r = self.report
        top = max((ino for ino, n in self.nodes.items() if n.type), default=0)
        next_ino = self.counter("nextInode")
        if next_ino <= top:
            r.add("next_inode", top, f"nextInode {next_ino} is not above inode {top}")
        used_bytes = self.used_bytes + self.counter("usedBytes")
        used_inodes = self.used_inodes + self.counter("usedInodes")
        sizes = sum(n.size for n in self.nodes.values() if n.type == FileType.REGULAR)
        if used_inodes != r.inodes or used_bytes != sizes:
            r.add("usage", 0, f"statfs says {used_inodes} inodes, {used_bytes} bytes; "
                  f"found {r.inodes} inodes, {sizes} bytes in regular files")


    # --- pass 5: directory stats and quota usage ----------------------------------------
    def check_trees(self) -> None:
        """Each directory's stats against its own entries and their file sizes; each
        quota'd directory's usage against those summed up its tree along attr.parent
        (directories whose chain of parents does not reach the root are reported
        already, and skipped)."""
        sound = self.report.ok
        for ino in sorted(self.tree_keyed):
            n = self.nodes.get(ino)
            if n is None or n.type != _DIR:
                self.report.add("stray_tree", ino, "stats deltas or a quota of "
                                + ("a missing inode" if n is None or not n.type else
                                   f"a {FileType(n.type).name}"))
        for ino, n in self.nodes.items():
            if n.usage is not None and ino not in self.quotas:
                self.report.add("stray_tree", ino, "a quota usage without a quota")
        if not sound:
            return
        quotas = self.counter("quotas")
        if quotas != len(self.quotas):
            self.report.add("tree_totals", 0, f"quotas counter {quotas}, "
                            f"{len(self.quotas)} quotas")
        own = {ino: Summary(n.subdirs, n.subfiles, 0) for ino, n in self.nodes.items()
               if n.type == _DIR}
        for n in self.nodes.values():
            if n.type == FileType.REGULAR and n.size and n.refs:
                links = [(n.last_parent, 1)] if n.refs == 1 else n.links or []
                for parent, count in links:
                    if parent in own:
                        own[parent].size += n.size * count
        # A namespace made before directory stats were kept has partial ones until a
        # `quota check --repair /`; its summaries are refused until then, not wrong.
        complete = bool(self.counter(schema.STATS_COUNTER))
        for ino, want in own.items():
            kept = self.nodes[ino].kept or Summary()
            if complete and kept != want:
                self.report.add("tree_totals", ino, f"stats say {_counts(kept)}; its entries "
                                f"are {_counts(want)}")
        if not self.quotas:
            return
        depth = self.depths()
        below = {ino: Summary(s.dirs, s.files, s.size) for ino, s in own.items()}
        for ino in sorted(depth, key=depth.__getitem__, reverse=True):   # deepest first
            if ino != ROOT_INO:
                up = below[self.nodes[ino].parent]
                up.dirs, up.files, up.size = (up.dirs + below[ino].dirs, up.files +
                                              below[ino].files, up.size + below[ino].size)
        for ino in sorted(self.quotas & depth.keys()):
            usage = self.nodes[ino].usage or Summary()
            if usage != below[ino]:
                self.report.add("tree_totals", ino, f"quota usage {_counts(usage)}; its tree "
                                f"holds {_counts(below[ino])}")

    def depths(self) -> dict[int, int]:
        """Depth below the root of every directory whose attr.parent chain reaches it."""
        depth = {ROOT_INO: 0} if ROOT_INO in self.nodes else {}
        for start, n in self.nodes.items():
            if n.type != _DIR or start in depth:
                continue
            path, cur, seen = [], start, set()
            while cur not in depth:
                node = self.nodes.get(cur)
                if node is None or node.type != _DIR or cur in seen:
                    path = []
                    break
                seen.add(cur)
                path.append(cur)
                cur = node.parent
            base = depth.get(cur, 0)
            for i, ino in enumerate(reversed(path), 1):
                depth[ino] = base + i
        return depth


def _counts(s: Summary) -> str:
    return f"{s.dirs} dirs, {s.files} files, {s.size} bytes"


def _tags(keys: dict[bytes, int]) -> str:
    return ", ".join(f"{c} {t.decode(errors='replace')!r}" for t, c in sorted(keys.items()))


def fsck(engine: Engine) -> Report:
    """Check the namespace stored in `engine`; changes nothing."""
    return _Checker(engine).run()
