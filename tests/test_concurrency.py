"""Many threads on one Runner: what was acknowledged is there, exactly, and fsck stays clean.

Operations may be refused with a legitimate errno (the race was lost, or the move would
have made a cycle); anything else fails the test. Every storm is bounded in operations
and in time; the tests assert outcomes, never how long anything took.
"""

from __future__ import annotations

import errno
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import formatted
from engines.contract import TxnConflict
from metaserver import ops, schema
from metaserver.errors import FsError
from metaserver.fsck import fsck
from metaserver.ops.metatx import MetaTx, OpContext
from metaserver.runner import Runner
from metaserver.types import ROOT_INO, FileType

THREADS = 8
DEADLINE_S = 30.0           # a bound on each storm, not an expectation
LEGITIMATE = {errno.ENOENT, errno.EEXIST, errno.EINVAL, errno.ENOTEMPTY, errno.EAGAIN}
NOREPLACE, EXCHANGE = 1, 2

pytestmark = pytest.mark.parametrize("engine", ["memory", "rocksdb"], indirect=True)


def storm(work, ops_per_thread: int) -> None:
    """Run work(rng) up to ops_per_thread times in each of THREADS threads, all starting
    together, until the deadline; re-raise what any thread raised."""
    start = threading.Barrier(THREADS)
    deadline = time.monotonic() + DEADLINE_S

    def thread(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(ops_per_thread):
            if time.monotonic() > deadline:
                return
            work(rng)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)         # switch threads often, so transactions interleave
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(thread, seed) for seed in range(THREADS)]:
                future.result()
    finally:
        sys.setswitchinterval(interval)


def attempt(runner: Runner, op: str, **kwargs):
    """The result, or None if the operation was refused with a legitimate errno."""
    try:
        return runner.call(op, **kwargs)
    except FsError as exc:
        assert exc.errno in LEGITIMATE, f"{op}{kwargs}: {exc}"
        return None


def listing(runner: Runner, ino: int) -> dict[bytes, int]:
    entries, cursor = {}, b""
    while True:
        page = runner.call("readdir", ino=ino, cursor=cursor, limit=1000)
        entries.update((e.name, e.ino) for e in page.entries)
        if not page.cursor:
            return entries
        cursor = page.cursor


def assert_fsck_clean(engine) -> None:
    report = fsck(engine)
    assert report.ok, str(report)


def test_directory_rename_storm_keeps_a_tree(engine):
    """Directories moved into each other at random, a move into a descendant included:
    no cycle, no orphan, every directory found once, link counts exact."""
    r = Runner(formatted(engine))
    names = [b"d%02d" % i for i in range(16)]
    dirs = {r.call("mkdir", parent=ROOT_INO, name=name).ino: name for name in names}
    targets = [ROOT_INO, *dirs]
    moved = []

    def move(rng: random.Random) -> None:
        ino = rng.choice(list(dirs))
        parent = r.call("getattr", ino=ino).parent      # maybe stale by the rename: ENOENT
        entry = attempt(r, "rename", parent=parent, name=dirs[ino],
                        new_parent=rng.choice(targets), new_name=dirs[ino])
        if entry is not None:
            assert entry.ino == ino
            moved.append(ino)

    storm(move, ops_per_thread=150)
    assert moved
    assert_fsck_clean(engine)
    found, queue = {}, [ROOT_INO]
    while queue:                                        # walk the tree by its entries
        d = queue.pop()
        for name, ino in listing(r, d).items():
            assert ino not in found and dirs[ino] == name
            found[ino] = d
            queue.append(ino)
    assert found.keys() == dirs.keys()
    assert all(r.call("getattr", ino=ino).parent == parent for ino, parent in found.items())


def test_crossing_moves_in_flight_together_cannot_both_commit(engine):
    """A0 moves into a1 while A1 moves into a0, both transactions open at once and with
    different parents: each alone is legal, together they would make a loop cut off
    from the root. The second commit must conflict, since its ancestor walk read A0."""
    r = Runner(formatted(engine))
    tops, kids = [], []
    for i in range(3):
        tops.append(r.call("mkdir", parent=ROOT_INO, name=b"A%d" % i).ino)
        kids.append(r.call("mkdir", parent=tops[i], name=b"a").ino)
    r.call("rename", parent=ROOT_INO, name=b"A0", new_parent=kids[2], new_name=b"A0")
    first, second = engine.begin(), engine.begin()
    for txn, (parent, name, new_parent) in [(first, (kids[2], b"A0", kids[1])),
                                            (second, (ROOT_INO, b"A1", kids[0]))]:
        ctx = OpContext(now_ns=time.time_ns(), alloc_ino=lambda: pytest.fail("no inode needed"))
        ops.rename.rename(MetaTx(txn, ctx), parent=parent, name=name, new_parent=new_parent,
                          new_name=name)
    first.commit()
    with pytest.raises(TxnConflict):
        second.commit()
    assert_fsck_clean(engine)


def test_creates_in_one_directory_are_all_there(engine):
    """Threads create overlapping names (every fourth a directory) in one directory:
    each name is acknowledged at most once, and the directory holds exactly those."""
    r = Runner(formatted(engine))
    shared = r.call("mkdir", parent=ROOT_INO, name=b"shared").ino
    names = [b"n%03d" % i for i in range(400)]
    acked: dict[bytes, int] = {}
    lock = threading.Lock()

    def create(rng: random.Random) -> None:
        name = rng.choice(names)
        op = "mkdir" if int(name[1:]) % 4 == 0 else "mknod"
        entry = attempt(r, op, parent=shared, name=name)
        if entry is not None:
            with lock:
                assert name not in acked, f"{name!r} created twice"
                acked[name] = entry.ino

    storm(create, ops_per_thread=100)
    assert acked
    assert listing(r, shared) == acked
    subdirs = sum(1 for name in acked if int(name[1:]) % 4 == 0)
    assert r.call("getattr", ino=shared).nlink == 2 + subdirs
    assert r.call("statfs").used_inodes == 2 + len(acked)
    assert_fsck_clean(engine)


def test_hard_link_churn_keeps_link_counts(engine):
    """Files linked, unlinked, renamed and exchanged across directories: nlink and the
    per-directory link records match the entries."""
    r = Runner(formatted(engine))
    dirs = [r.call("mkdir", parent=ROOT_INO, name=b"D%d" % i).ino for i in range(3)]
    files = [r.call("mknod", parent=dirs[0], name=b"n%d" % i).ino for i in range(4)]
    names = [b"n%d" % i for i in range(5)]

    def churn(rng: random.Random) -> None:
        d, name = rng.choice(dirs), rng.choice(names)
        action = rng.randrange(10)
        if action < 4:
            attempt(r, "link", ino=rng.choice(files), parent=d, name=name)
        elif action < 6:
            attempt(r, "unlink", parent=d, name=name)
        elif action < 9:
            attempt(r, "rename", parent=d, name=name, new_parent=rng.choice(dirs),
                    new_name=rng.choice(names), flags=rng.choice([0, NOREPLACE, EXCHANGE]))
        else:
            entry = attempt(r, "mknod", parent=d, name=name)
            if entry is not None:
                files.append(entry.ino)         # list.append is atomic

    storm(churn, ops_per_thread=150)
    assert_fsck_clean(engine)
    names_of: dict[int, int] = {}
    for d in dirs:
        for ino in listing(r, d).values():
            names_of[ino] = names_of.get(ino, 0) + 1
    for ino in files:
        if ino in names_of:
            a = r.call("getattr", ino=ino)
            assert a.type == FileType.REGULAR and a.nlink == names_of[ino]
        else:
            with pytest.raises(FsError) as gone:
                r.call("getattr", ino=ino)
            assert gone.value.errno == errno.ENOENT


def commit_during(engine, key: bytes, call) -> None:
    """Make call() (its own transactions) commit right after the next transaction reads key."""
    begin = engine.begin
    pending = [call]

    def begin_spied():
        txn = begin()
        get = txn.get

        def get_spied(k: bytes):
            value = get(k)
            if k == key and pending:
                pending.pop()()
            return value

        txn.get = get_spied
        return txn

    engine.begin = begin_spied


def _unlink_while_the_other_link_goes(r: Runner, engine):
    p1, p2 = (r.call("mkdir", parent=ROOT_INO, name=n).ino for n in (b"p1", b"p2"))
    x = r.call("mknod", parent=p1, name=b"a").ino
    r.call("link", ino=x, parent=p2, name=b"b")
    commit_during(engine, schema.attr_key(x), lambda: r.call("unlink", parent=p2, name=b"b"))
    return ("unlink", dict(parent=p1, name=b"a")), None       # serially: it succeeds


def _noreplace_rename_while_the_source_moves_there(r: Runner, engine):
    p, q = (r.call("mkdir", parent=ROOT_INO, name=n).ino for n in (b"p", b"q"))
    x = r.call("mknod", parent=p, name=b"a").ino
    move = dict(parent=p, name=b"a", new_parent=q, new_name=b"b")
    commit_during(engine, schema.attr_key(x), lambda: r.call("rename", **move))
    return ("rename", dict(move, flags=NOREPLACE)), errno.ENOENT    # serially: the source is gone


@pytest.mark.parametrize("case", [_unlink_while_the_other_link_goes,
                                  _noreplace_rename_while_the_source_moves_there])
def test_an_attempt_that_read_two_states_is_retried(engine, case):
    """Another commit lands between an operation's reads. The attempt must then conflict
    and be retried, not end in an answer no serial order gives (here a crash, or EEXIST
    for a destination that did not exist while the source did)."""
    r = Runner(formatted(engine))
    (op, kwargs), expected = case(r, engine)
    try:
        r.call(op, **kwargs)
        got = None
    except FsError as exc:
        got = exc.errno
    assert got == expected
    assert_fsck_clean(engine)
