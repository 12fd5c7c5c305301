"""fsck: clean on healthy namespaces, and finds each kind of corruption written under it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from conftest import formatted
from metaserver import schema
from metaserver.errors import FsError
from metaserver.fsck import fsck
from metaserver.runner import Runner
from metaserver.types import ROOT_INO, FileType, Slice

# fsck reads through the engine contract only, which the contract suite checks everywhere.
LOCAL_ENGINES = pytest.mark.parametrize("engine", ["memory", "rocksdb"], indirect=True)


@dataclass
class Tree:
    """/a/b/, /a/f (data, xattr), /g linked as /a/g2, /s -> /a/f; inode numbers."""
    a: int
    b: int
    f: int
    g: int
    s: int


def build(runner: Runner) -> Tree:
    a = runner.call("mkdir", parent=ROOT_INO, name=b"a").ino
    b = runner.call("mkdir", parent=a, name=b"b").ino
    f = runner.call("mknod", parent=a, name=b"f").ino
    slice_id = runner.call("alloc_slice_ids", count=1)
    runner.call("write_slice", ino=f, index=0, slice=Slice(0, slice_id, 100, 0, 100))
    runner.call("setxattr", ino=f, name=b"user.k", value=b"v")
    g = runner.call("mknod", parent=ROOT_INO, name=b"g").ino
    runner.call("link", ino=g, parent=a, name=b"g2")
    s = runner.call("symlink", parent=ROOT_INO, name=b"s", target=b"/a/f").ino
    return Tree(a, b, f, g, s)


def put(engine, writes: dict[bytes, bytes | None]) -> None:
    """Write raw keys under the namespace (None deletes)."""
    txn = engine.begin()
    for key, value in writes.items():
        if value is None:
            txn.delete(key)
        else:
            txn.put(key, value)
    txn.commit()


def attrs(engine, changes: dict[int, dict]) -> dict[bytes, bytes]:
    """Attr writes: for each inode, fields to set (a callable gets the old value)."""
    snap = engine.snapshot()
    try:
        writes = {}
        for ino, fields in changes.items():
            a = schema.decode_attr(ino, snap.get(schema.attr_key(ino)))
            for name, value in fields.items():
                setattr(a, name, value(getattr(a, name)) if callable(value) else value)
            writes[schema.attr_key(ino)] = schema.encode_attr(a)
        return writes
    finally:
        snap.rollback()


def dentry(parent: int, name: bytes, type_: FileType, ino: int) -> dict[bytes, bytes]:
    return {schema.dentry_key(parent, name): schema.encode_dentry(type_, ino)}


def less(v: int) -> int:
    return v - 1


def more(v: int) -> int:
    return v + 1


# name: (the writes that corrupt, given engine and tree; exactly the kinds fsck must report;
#        the inode (a Tree field or a number) reported under the alphabetically first kind)
CORRUPTIONS = {
    "bad nlink": (lambda e, t: attrs(e, {t.f: {"nlink": 3}}), {"nlink"}, "f"),
    "attr deleted under a dentry": (lambda e, t: {schema.attr_key(t.f): None},
                                    {"dangling_dentry", "stray_key", "usage"}, "f"),
    "cycle": (   # /a moved into /a/b by rewriting its entry and parent; link counts kept right
        lambda e, t: {schema.dentry_key(ROOT_INO, b"a"): None,
                      **dentry(t.b, b"a", FileType.DIRECTORY, t.a),
                      **attrs(e, {t.a: {"parent": t.b}, ROOT_INO: {"nlink": less},
                                  t.b: {"nlink": more}})},
        {"cycle"}, "a"),
    "orphan directory": (lambda e, t: {schema.dentry_key(ROOT_INO, b"a"): None,
                                       **attrs(e, {ROOT_INO: {"nlink": less}})},
                         {"orphan", "unreachable"}, "a"),
    "orphan file": (lambda e, t: {schema.dentry_key(t.a, b"f"): None,
                                  **attrs(e, {t.f: {"nlink": 0}})},
                    {"orphan"}, "f"),
    "dentry type": (lambda e, t: dentry(ROOT_INO, b"s", FileType.REGULAR, t.s),
                    {"dentry_type"}, "s"),
    "dentry naming a missing inode": (lambda e, t: dentry(t.a, b"x", FileType.REGULAR, 999),
                                      {"dangling_dentry"}, 999),
    "dentry inside a file": (lambda e, t: dentry(t.f, b"x", FileType.REGULAR, 999),
                             {"dangling_dentry", "stray_key"}, 999),
    "directory named twice": (lambda e, t: {**dentry(ROOT_INO, b"b2", FileType.DIRECTORY, t.b),
                                            **attrs(e, {ROOT_INO: {"nlink": more}})},
                              {"dir_links"}, "b"),
    "directory parent": (lambda e, t: attrs(e, {t.b: {"parent": ROOT_INO}}), {"dir_parent"}, "b"),
    "file parent": (lambda e, t: attrs(e, {t.f: {"parent": ROOT_INO}}), {"file_parent"}, "f"),
    "link parent counts": (lambda e, t: {schema.parent_key(t.g, ROOT_INO): schema.encode_count(2),
                                         schema.parent_key(t.g, t.a): None},
                           {"link_parents"}, "g"),
    "link parent on a one-link file": (
        lambda e, t: {schema.parent_key(t.f, t.a): schema.encode_count(1)}, {"link_parents"}, "f"),
    "symlink target missing": (lambda e, t: {schema.symlink_key(t.s): None},
                               {"missing_target"}, "s"),
    "xattr of a missing inode": (lambda e, t: {schema.xattr_key(999, b"user.k"): b"v"},
                                 {"stray_key"}, 999),
    "chunk on a directory": (lambda e, t: {schema.chunk_key(t.b, 0): b""}, {"stray_key"}, "b"),
    "nextInode too small": (lambda e, t: {schema.counter_key("nextInode"): schema.encode_i64(3)},
                            {"next_inode"}, "s"),
    "usage delta": (lambda e, t: {schema.delta_key(1, 1): schema.encode_delta(0, 1)}, {"usage"}, 0),
    "undecodable dentry": (lambda e, t: {schema.dentry_key(t.a, b"junk"): b"xx"},
                           {"undecodable"}, "a"),
    "root not its own parent": (lambda e, t: attrs(e, {ROOT_INO: {"parent": t.a}}),
                                {"root"}, ROOT_INO),
}


@LOCAL_ENGINES
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_fsck_reports_corruption(engine, corruption):
    tree = build(Runner(formatted(engine)))
    assert fsck(engine).ok
    writes, kinds, about = CORRUPTIONS[corruption]
    put(engine, writes(engine, tree))
    report = fsck(engine)
    assert report.kinds() == kinds, str(report)
    ino = getattr(tree, about) if isinstance(about, str) else about
    first = min(kinds)
    assert ino in {p.ino for p in report.problems if p.kind == first}, str(report)


@LOCAL_ENGINES
def test_fsck_counts_a_healthy_tree(engine):
    build(Runner(formatted(engine)))
    report = fsck(engine)
    assert report.ok and (report.inodes, report.dirs, report.files) == (6, 3, 3), str(report)


@LOCAL_ENGINES
def test_fsck_ok_on_an_empty_namespace(engine):
    formatted(engine)
    report = fsck(engine)
    assert report.ok and (report.inodes, report.dirs, report.files) == (1, 1, 0)


@LOCAL_ENGINES
def test_fsck_ok_after_renames_links_and_removals(engine):
    r = Runner(formatted(engine))
    t = build(r)
    r.call("rename", parent=t.a, name=b"b", new_parent=ROOT_INO, new_name=b"b")
    r.call("rename", parent=ROOT_INO, name=b"g", new_parent=t.b, new_name=b"g")
    r.call("link", ino=t.g, parent=t.b, name=b"g3")
    r.call("rename", parent=ROOT_INO, name=b"s", new_parent=t.a, new_name=b"f", flags=2)
    r.call("unlink", parent=t.a, name=b"g2")
    r.call("unlink", parent=t.a, name=b"f")          # the symlink, since the exchange
    r.call("mkdir", parent=t.b, name=b"c")
    r.call("rmdir", parent=t.b, name=b"c")
    report = fsck(engine)
    assert report.ok and (report.inodes, report.dirs, report.files) == (5, 3, 2), str(report)


@LOCAL_ENGINES
def test_fsck_counts_a_wide_directory(engine):
    r = Runner(formatted(engine))
    d = r.call("mkdir", parent=ROOT_INO, name=b"wide").ino
    made = r.call_many([("mknod", b"", dict(parent=d, name=b"f%04d" % i)) for i in range(1500)])
    assert not [m for m in made if isinstance(m, Exception)]
    report = fsck(engine)
    assert report.ok and report.files == 1500, str(report)


@LOCAL_ENGINES
def test_fsck_is_exact_while_others_write(engine):
    """One point-in-time scan: a check racing renames, links and removals sees no problem."""
    r = Runner(formatted(engine))
    t = build(r)
    checking, stop = threading.Event(), threading.Event()

    def churn():
        checking.wait()
        for i in range(300):
            if stop.is_set():
                return
            b_from, b_to = (ROOT_INO, t.a) if i % 2 else (t.a, ROOT_INO)
            for op, kwargs in [
                ("rename", dict(parent=b_from, name=b"b", new_parent=b_to, new_name=b"b")),
                ("link", dict(ino=t.g, parent=t.b, name=b"g%d" % i)),
                ("unlink", dict(parent=t.b, name=b"g%d" % (i - 1))),
                ("mknod", dict(parent=t.b, name=b"n%d" % i)),
                ("unlink", dict(parent=t.b, name=b"n%d" % (i - 1))),
            ]:
                try:
                    r.call(op, **kwargs)
                except FsError:
                    pass

    writer = threading.Thread(target=churn)
    writer.start()
    reports = []
    try:
        checking.set()
        while writer.is_alive() and len(reports) < 1000:
            reports.append(fsck(engine))
    finally:
        stop.set()
        writer.join()
    assert all(report.ok for report in reports), "\n".join(str(rp) for rp in reports if not rp.ok)
    assert len({report.seq for report in reports}) > 1         # it did race the writer


def test_fsck_walks_a_deep_tree_without_recursion():
    from engines import open_engine
    engine = open_engine("memory://")
    r = Runner(formatted(engine))
    parent = ROOT_INO
    for _ in range(3000):
        parent = r.call("mkdir", parent=parent, name=b"d").ino
    report = fsck(engine)
    assert report.ok and report.dirs == 3001, str(report)
