"""The final tree: one root; every entry's parent is a directory of the tree at the
entry's parent path; every directory has one name (no hard-linked directory) and leads
up to the root (no cycle, no orphan); and the final fsck is clean.

The tree is the final walk, [path, ino, type, parent_ino] per entry, the root first as
["/", ROOT_INO, DIRECTORY, ROOT_INO].
"""

from __future__ import annotations

import posixpath
from collections import defaultdict

from jepsen.checkers.common import anomaly, history, unknown, verdict
from metaserver.types import ROOT_INO, FileType

DIR = int(FileType.DIRECTORY)


def check(ops) -> dict:
    h = history(ops)
    trees = [op for op in h.finals if op.f == "tree"]
    fscks = [op for op in h.finals if op.f == "fsck"]
    if not trees:
        return unknown("no final tree")
    op = trees[-1]
    entries = op.result or []
    anomalies: list[dict] = []

    def problem(kind: str, explanation: str) -> None:
        anomalies.append(anomaly(kind, [op], explanation))

    roots = [e for e in entries if e[0] == "/"]
    if len(roots) != 1 or roots[0][1] != ROOT_INO:
        problem("root", f"the tree has {len(roots)} roots: {roots}")
    by_path = {path: (ino, typ, parent) for path, ino, typ, parent in entries}
    paths_of: dict[int, list[str]] = defaultdict(list)
    for path, ino, typ, parent in entries:
        if typ == DIR:
            paths_of[ino].append(path)
    parent_of = {ino: by_path[paths[0]][2] for ino, paths in paths_of.items()}
    for path, ino, typ, parent in entries:
        if path == "/":
            continue
        up = by_path.get(posixpath.dirname(path))
        if parent not in paths_of:
            problem("orphan", f"{path} (inode {ino}) names parent {parent}, which is no "
                              "directory of the tree")
        elif up is None or up[0] != parent:
            problem("parent", f"{path} (inode {ino}) names parent {parent}, but its parent "
                              f"path holds inode {up[0] if up else None}")
    for ino, paths in paths_of.items():
        if len(paths) > 1:
            problem("directory-hard-link", f"directory {ino} has {len(paths)} names: {paths}")
    reaches_root: dict[int, bool] = {ROOT_INO: True}
    for start in parent_of:
        chain, ino = [], start
        while ino not in reaches_root and ino in parent_of and ino not in chain:
            chain.append(ino)
            ino = parent_of[ino]
        ok = reaches_root.get(ino, False)
        if not ok and ino in chain:         # found once: its members are settled below
            problem("cycle", f"directories {chain[chain.index(ino):]} are each other's parents")
        reaches_root.update({i: ok for i in chain})
    if not fscks:
        return verdict(anomalies, entries=len(entries), fsck="missing")
    result = fscks[-1].result or {}
    if not result.get("clean", False):
        anomalies.append(anomaly("fsck", [fscks[-1]], "the final fsck is not clean: "
                                 + "; ".join(result.get("problems", [])[:20])))
    return verdict(anomalies, entries=len(entries))
