"""repair: every kind of corruption written straight into an engine is reported by fsck,
fixed by repair (fsck clean after), and leaves a namespace that works; metactl fsck."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest
import test_fsck

from conftest import formatted
from engines import open_engine
from metaserver import schema
from metaserver.fsck import fsck
from metaserver.repair import LOST_FOUND, repair
from metaserver.runner import Runner
from metaserver.types import ROOT_INO, FileType

METACTL = shutil.which("metactl", path=str(pathlib.Path(sys.executable).parent))
LOCAL_ENGINES = pytest.mark.parametrize("engine", ["memory", "rocksdb"], indirect=True)
DIR, REG = FileType.DIRECTORY, FileType.REGULAR


@dataclass
class Tree(test_fsck.Tree):
    """fsck's test tree (/a/b/, /a/f with a chunk and an xattr, /g linked as /a/g2,
    /s -> /a/f) and /a/b/c/deep, so that a cycle can span three directories."""
    c: int = 0
    deep: int = 0


def build(runner: Runner) -> Tree:
    t = test_fsck.build(runner)
    c = runner.call("mkdir", parent=t.b, name=b"c").ino
    deep = runner.call("mknod", parent=c, name=b"deep").ino
    return Tree(**dataclasses.asdict(t), c=c, deep=deep)


class Raw:
    """One transaction of raw writes under the namespace, past every operation's rules:
    how corruption gets in."""

    def __init__(self, engine) -> None:
        self.txn = engine.begin()

    def attr(self, ino: int, **changes) -> None:
        """Set attr fields; a callable gets the old value."""
        a = schema.decode_attr(ino, self.txn.get(schema.attr_key(ino)))
        for name, value in changes.items():
            setattr(a, name, value(getattr(a, name)) if callable(value) else value)
        self.txn.put(schema.attr_key(ino), schema.encode_attr(a))

    def entry(self, parent: int, name: bytes, ino: int | None = None, type_: FileType = REG) -> None:
        """Write an entry naming `ino`, or delete it (ino None)."""
        self.key(schema.dentry_key(parent, name),
                 None if ino is None else schema.encode_dentry(type_, ino))

    def key(self, key: bytes, value: bytes | None = None) -> None:
        if value is None:
            self.txn.delete(key)
        else:
            self.txn.put(key, value)

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc) -> None:
        self.txn.commit()


def less(n: int) -> int:
    return n - 1


def more(n: int) -> int:
    return n + 1


def cycle(raw: Raw, t: Tree) -> None:
    """/a moved into /a/b/c by rewriting entries and parents (link counts kept right)."""
    raw.entry(ROOT_INO, b"a")
    raw.entry(t.c, b"a", t.a, DIR)
    raw.attr(t.a, parent=t.c)
    raw.attr(ROOT_INO, nlink=less)
    raw.attr(t.c, nlink=more)


def counter(name: str, value: int) -> tuple[bytes, bytes]:
    return schema.counter_key(name), schema.encode_i64(value)


# name: (the corruption, kinds fsck must report (at least))
CORRUPTIONS = {
    "file nlink": (lambda raw, t: raw.attr(t.f, nlink=5), {"nlink"}),
    "directory nlink": (lambda raw, t: raw.attr(t.a, nlink=9), {"nlink"}),
    "entry naming a missing file": (lambda raw, t: raw.entry(t.a, b"ghost", 999),
                                    {"dangling_dentry"}),
    "entry naming a missing directory": (lambda raw, t: raw.entry(t.b, b"ghost", 998, DIR),
                                         {"dangling_dentry", "nlink"}),
    "orphan file": (lambda raw, t: raw.entry(t.a, b"f"), {"orphan"}),
    "orphan directory with a subtree": (
        lambda raw, t: (raw.entry(t.a, b"b"), raw.attr(t.a, nlink=less)), {"orphan", "unreachable"}),
    "directory parent": (lambda raw, t: raw.attr(t.c, parent=ROOT_INO), {"dir_parent"}),
    "file parent": (lambda raw, t: raw.attr(t.deep, parent=t.a), {"file_parent"}),
    "link parent keys": (lambda raw, t: (raw.key(schema.parent_key(t.g, ROOT_INO)),
                                         raw.key(schema.parent_key(t.g, t.a), schema.encode_count(2))),
                         {"link_parents"}),
    "cycle": (cycle, {"cycle"}),
    "keys of a missing inode": (
        lambda raw, t: (raw.key(schema.chunk_key(999, 0), b""),
                        raw.key(schema.xattr_key(999, b"user.x"), b"1"),
                        raw.key(schema.parent_key(999, t.a), schema.encode_count(1))),
        {"stray_key"}),
    "chunk on a directory": (lambda raw, t: raw.key(schema.chunk_key(t.b, 0), b""), {"stray_key"}),
    "attr of a hard-linked file deleted": (lambda raw, t: raw.key(schema.attr_key(t.g)),
                                           {"dangling_dentry", "stray_key", "usage"}),
    "directory named from inside a file": (lambda raw, t: raw.entry(t.f, b"x", t.c, DIR),
                                           {"stray_key", "dir_links"}),
    "directory named twice": (lambda raw, t: (raw.entry(ROOT_INO, b"c-again", t.c, DIR),
                                              raw.attr(ROOT_INO, nlink=more)), {"dir_links"}),
    "entry of the wrong type": (lambda raw, t: raw.entry(ROOT_INO, b"s", t.s, REG), {"dentry_type"}),
    "usage counters": (lambda raw, t: (raw.key(*counter("usedInodes", 1000)),
                                       raw.key(*counter("usedBytes", -5))), {"usage"}),
    "nextInode behind": (lambda raw, t: raw.key(*counter("nextInode", 2)), {"next_inode"}),
    "root's parent": (lambda raw, t: raw.attr(ROOT_INO, parent=t.a), {"root"}),
    "root missing": (lambda raw, t: raw.key(schema.attr_key(ROOT_INO)), {"root", "stray_key"}),
}


def exercise(runner: Runner) -> None:
    """Create, link, rename and remove in every directory, and move each one away and
    back: what a repaired namespace must allow."""
    dirs = [(ROOT_INO, b"")]
    for ino, path in dirs:
        for e in runner.call("readdir", ino=ino).entries:
            if e.type == DIR:
                dirs.append((e.ino, path + b"/" + e.name))
    for ino, path in dirs:
        f = runner.call("mknod", parent=ino, name=b"new").ino
        runner.call("link", ino=f, parent=ROOT_INO, name=b"link-%d" % ino)
        runner.call("rename", parent=ino, name=b"new", new_parent=ino, new_name=b"renamed")
        runner.call("unlink", parent=ino, name=b"renamed")
        runner.call("unlink", parent=ROOT_INO, name=b"link-%d" % ino)
        runner.call("mkdir", parent=ino, name=b"sub")
        runner.call("rmdir", parent=ino, name=b"sub")
        if path:
            parent, name = runner.call("resolve", path=path.rpartition(b"/")[0] or b"/").ino, \
                path.rpartition(b"/")[2]
            runner.call("rename", parent=parent, name=name, new_parent=ROOT_INO, new_name=b"away")
            runner.call("rename", parent=ROOT_INO, name=b"away", new_parent=parent, new_name=name)


def corrupted(engine, *cases: str) -> Tree:
    t = build(Runner(formatted(engine)))
    for case in cases:
        with Raw(engine) as raw:
            CORRUPTIONS[case][0](raw, t)
    return t


@LOCAL_ENGINES
@pytest.mark.parametrize("case", CORRUPTIONS)
def test_repair_fixes_each_corruption(engine, case):
    corrupted(engine, case)
    report = fsck(engine)
    assert CORRUPTIONS[case][1] <= report.kinds(), report
    summary = repair(engine, report)
    assert summary.fixed and not summary.left, summary
    assert fsck(engine).ok, fsck(engine)
    exercise(Runner(engine))
    assert fsck(engine).ok, fsck(engine)


@pytest.mark.parametrize("engine", ["memory", "rocksdb", "mariadb"], indirect=True)
def test_one_repair_fixes_every_corruption_at_once(engine):
    """Tangled: a cycle hidden behind an entry inside a file, an orphan whose parent is
    itself repaired, a missing root holding everything..."""
    corrupted(engine, *CORRUPTIONS)
    report = fsck(engine)
    assert len(report.kinds()) >= 8, report
    summary = repair(engine, report)
    assert not summary.left, summary
    assert fsck(engine).ok, fsck(engine)
    exercise(Runner(engine))
    assert fsck(engine).ok


def lost_found(runner: Runner) -> dict[bytes, int]:
    listing = runner.call("readdir", ino=runner.call("resolve", path=b"/" + LOST_FOUND).ino)
    return {e.name: e.ino for e in listing.entries}


@LOCAL_ENGINES
def test_orphans_are_reattached_under_lost_found_by_inode_number(engine):
    t = corrupted(engine, "orphan file", "orphan directory with a subtree")
    repair(engine, fsck(engine))
    runner = Runner(engine)
    assert lost_found(runner) == {b"%d" % t.f: t.f, b"%d" % t.b: t.b}
    assert runner.call("resolve", path=b"/lost+found/%d/c/deep" % t.b).ino == t.deep
    assert runner.call("getattr", ino=t.f).nlink == 1
    assert runner.call("getxattr", ino=t.f, name=b"user.k") == b"v"
    assert runner.call("read_chunk", ino=t.f, index=0)[0].len == 100


@LOCAL_ENGINES
def test_a_cycle_is_cut_at_its_lowest_directory(engine):
    t = corrupted(engine, "cycle")      # a -> b -> c -> a
    repair(engine, fsck(engine))
    runner = Runner(engine)
    assert lost_found(runner) == {b"%d" % t.a: t.a}
    assert runner.call("resolve", path=b"/lost+found/%d/b/c/deep" % t.a).ino == t.deep
    assert [e.name for e in runner.call("readdir", ino=t.c).entries] == [b"deep"]


@LOCAL_ENGINES
def test_an_existing_lost_found_is_used_and_a_file_there_is_not(engine):
    runner = Runner(formatted(engine))
    t = build(runner)
    runner.call("mknod", parent=ROOT_INO, name=LOST_FOUND)
    with Raw(engine) as raw:
        CORRUPTIONS["orphan file"][0](raw, t)
    summary = repair(engine, fsck(engine))
    assert any("lost+found is not available" in line for line in summary.left), summary
    assert "orphan" in fsck(engine).kinds()

    runner.call("unlink", parent=ROOT_INO, name=LOST_FOUND)
    kept = runner.call("mkdir", parent=ROOT_INO, name=LOST_FOUND).ino
    repair(engine, fsck(engine))
    assert runner.call("lookup", parent=kept, name=str(t.f).encode()).ino == t.f
    assert fsck(engine).ok


@LOCAL_ENGINES
def test_what_is_not_safe_to_fix_is_left_and_said(engine):
    t = build(Runner(formatted(engine)))
    with Raw(engine) as raw:
        raw.key(schema.symlink_key(t.s))
    summary = repair(engine, fsck(engine))
    assert summary.left == [f"missing_target ino={t.s}: a symlink's target cannot be recovered"]
    assert fsck(engine).kinds() == {"missing_target"}


def metactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([METACTL, *args], capture_output=True, text=True, timeout=120)


def test_metactl_fsck_and_repair(tmp_path):
    url = f"rocksdb://{tmp_path}/db"
    engine = open_engine(url, create=True)
    corrupted(engine, "file nlink")
    engine.close()              # RocksDB admits one process

    missing = metactl("fsck", "--meta-url", f"rocksdb://{tmp_path}/other")
    assert missing.returncode == 1 and "no metaserver namespace at" in missing.stderr
    assert not (tmp_path / "other").exists()
    found = metactl("fsck", "--meta-url", url)
    assert found.returncode == 1 and found.stderr == ""
    assert found.stdout.splitlines()[1].startswith("  nlink ino=")
    fixed = metactl("fsck", "--repair", "--meta-url", url)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired: inode " in fixed.stdout and " nlink 5 -> 1" in fixed.stdout
    assert fixed.stdout.rstrip().endswith(": ok")
    assert metactl("fsck", "--meta-url", url).returncode == 0


def test_metactl_fsck_names_an_unreachable_engine_without_its_password():
    url = "mysql+pymysql://user:hunter2@127.0.0.1:1/db"
    failed = metactl("fsck", "--meta-url", url)
    assert failed.returncode == 1 and failed.stdout == "" and failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("metactl: mysql+pymysql://user:***@127.0.0.1:1/db: ")
    assert "hunter2" not in failed.stderr
