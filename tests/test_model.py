"""The namespace operations against the model file system: results and errnos, step by step.

A hypothesis state machine drives random operations through the Runner and through
metaserver/testing/model_fs.py side by side, on the memory and the RocksDB engine (RocksDB also
restarts mid-run). After every step the whole tree must equal the model and fsck must
find nothing. Cases where Linux's errno depends on the order of its checks are pinned
one by one at the end.

Hypothesis settings: HYPOTHESIS_PROFILE=default (or unset), ci, or long, an on-demand
soak: `HYPOTHESIS_PROFILE=long .venv/bin/pytest --timeout 0 tests/test_model.py`.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant, multiple,
                                 precondition, rule)

from conftest import formatted
from engines import open_engine
from metaserver.errors import FsError
from metaserver.fsck import fsck
from metaserver.ops import OPS
from metaserver.runner import Runner
from metaserver.types import ROOT_INO, Attr, Entry, FileType, SetAttrMask
from metaserver.testing.model_fs import EXCHANGE, NOREPLACE, WHITEOUT, ModelFS

# Applied to these tests only: load_profile would change every hypothesis test in the run.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILES = {
    "default": settings(max_examples=30, stateful_step_count=100, **_COMMON),
    "ci": settings(max_examples=30, stateful_step_count=100, print_blob=True, **_COMMON),
    "long": settings(max_examples=2000, stateful_step_count=200, **_COMMON),
}
PROFILE = PROFILES.get(os.environ.get("HYPOTHESIS_PROFILE", ""), PROFILES["default"])

INO_ARGS = ("parent", "new_parent", "ino")      # arguments naming inodes: model -> real
FAILED = object()                               # both sides refused, with the same errno
OWN_NAME = "own name"                           # marks an entry reference by a node's name

# A few names so that operations collide, the longest legal one, and illegal ones.
GOOD_NAMES = [b"a", b"b", b"c", b"d", b"e"]
BAD_NAMES = [b"", b".", b"..", b"x/y", b"x\0y", b"n" * 256]
names = st.sampled_from(GOOD_NAMES * 8 + [b"n" * 255] + BAD_NAMES)
modes = st.sampled_from([0o644, 0o600, 0o755, 0o4711, 0o170644])
# No 4096-byte target: the service accepts it (a known bug) and the states would part.
targets = st.sampled_from([b"t", b"/abs/path", b"../up", b"", b"x\0y", b"l" * 4095, b"l" * 4097])
xattr_names = st.sampled_from([b"user.a"] * 4 + [b"user.b"] * 2 + [
    b"trusted.c", b"u" * 255, b"", b"u\0v", b"u" * 256])
xattr_values = st.sampled_from([b"", b"v", b"w", b"w" * 100, b"z" * 65537])
rename_flags = st.sampled_from([0] * 6 + [NOREPLACE] * 3 + [EXCHANGE] * 4 + [
    WHITEOUT, NOREPLACE | EXCHANGE, EXCHANGE | WHITEOUT, 8])
node_types = st.sampled_from([FileType.REGULAR] * 3 + [
    FileType.FIFO, FileType.SOCKET, FileType.CHAR_DEVICE, FileType.BLOCK_DEVICE,
    FileType.DIRECTORY, FileType.SYMLINK])


def outcome(fn):
    """(result, None) or (None, the FsError raised)."""
    try:
        return fn(), None
    except FsError as exc:
        return None, exc


def list_dir(runner: Runner, ino: int, limit: int, with_attrs: bool = False) -> list[Entry]:
    entries, cursor = [], b""
    while True:
        page = runner.call("readdir", ino=ino, cursor=cursor, limit=limit, with_attrs=with_attrs)
        entries += page.entries
        if not page.cursor:
            return entries
        cursor = page.cursor


class Pair:
    """The model and the service side by side: each call runs on both and is compared."""

    def __init__(self, runner: Runner) -> None:
        self.model = ModelFS()
        self.runner = runner
        self.real = {ROOT_INO: ROOT_INO}        # model inode -> service inode
        self.model_of = {ROOT_INO: ROOT_INO}
        self.acked: list[tuple[str, bytes, dict, object]] = []  # mutations, for replays
        self._rids = itertools.count()

    def check(self, op: str, **kwargs):
        """Run `op` on both; assert they agree. The model's result, or FAILED."""
        expected, want = outcome(lambda: getattr(self.model, op)(**kwargs))
        real_kwargs = {k: self.real[v] if k in INO_ARGS else v for k, v in kwargs.items()}
        rid = b"m%d" % next(self._rids) if OPS[op].mutating else b""
        got, err = outcome(lambda: self.runner.call(op, rid, **real_kwargs))
        if currently_in_test_context():     # statistics: what the runs exercised
            event(f"{op}: {errno.errorcode[err.errno] if err else 'ok'}")
        if self.both_failed(f"{op}{kwargs}", want, err, expected, got):
            return FAILED
        if isinstance(got, Entry | Attr):
            self.bind(expected, got.ino)
            self.assert_attr(expected, got.attr if isinstance(got, Entry) else got)
        else:
            assert got == expected, f"{op}{kwargs}: service {got!r}, model {expected!r}"
        if rid:
            self.acked.append((op, rid, real_kwargs, got))
        return expected

    def check_readdir(self, ino: int, limit: int) -> None:
        expected, want = outcome(lambda: self.model.readdir(ino=ino))
        got, err = outcome(lambda: [e.name for e in list_dir(self.runner, self.real[ino], limit)])
        if not self.both_failed(f"readdir({ino})", want, err, expected, got):
            assert got == expected

    @staticmethod
    def both_failed(what: str, want: FsError | None, err: FsError | None, expected, got) -> bool:
        """True if both refused alike, False if both succeeded; fails the test otherwise."""
        assert (want is None) == (err is None), \
            f"{what}: model {want or expected!r}, service {err or got!r}"
        if want is None:
            return False
        assert err.errno == want.errno, (
            f"{what}: service {errno.errorcode[err.errno]} ({err.message}), "
            f"model {errno.errorcode[want.errno]} ({want.message})")
        return True

    def bind(self, model_ino: int, real_ino: int) -> None:
        """Model and service inodes correspond one to one (the service never reuses one)."""
        if model_ino in self.real:
            assert self.real[model_ino] == real_ino, \
                f"model inode {model_ino} is service inode {self.real[model_ino]}, not {real_ino}"
        else:
            assert real_ino not in self.model_of, f"service inode {real_ino} named twice"
            self.real[model_ino] = real_ino
            self.model_of[real_ino] = model_ino

    def assert_attr(self, model_ino: int, a: Attr) -> None:
        n = self.model.nodes[model_ino]
        assert (a.type, a.nlink, a.size, a.mode) == (n.type, n.nlink, n.size, n.mode), \
            f"inode {model_ino}: service {a}, model {n}"

    def assert_same_tree(self) -> None:
        """Names, types, inodes, nlink, sizes, modes, targets and xattrs, everywhere."""
        r, m = self.runner, self.model
        self.assert_attr(ROOT_INO, r.call("getattr", ino=ROOT_INO))
        dirs = [ROOT_INO] + [ino for _, ino, n in m.walk() if n.is_dir]
        for d in dirs:
            entries = list_dir(r, self.real[d], limit=1000, with_attrs=True)
            assert [e.name for e in entries] == sorted(m.nodes[d].entries), m.path_of(d)
            for e in entries:
                child = m.nodes[d].entries[e.name]
                assert self.real.get(child) == e.ino and e.type == m.nodes[child].type
                self.assert_attr(child, e.attr)
        for ino, n in m.nodes.items():
            real = self.real[ino]
            if n.type == FileType.SYMLINK:
                assert r.call("readlink", ino=real) == n.target
            assert {x: r.call("getxattr", ino=real, name=x)
                    for x in r.call("listxattr", ino=real)} == n.xattrs
        assert r.call("statfs").used_inodes == len(m.nodes)


class NamespaceMachine(RuleBasedStateMachine):
    persistent = False          # RocksDB in a fresh directory, restartable; else memory

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="model-") if self.persistent else None
        # RocksDB without fsync: restarts here are clean (crashes are test_crash's job),
        # and a sync per step would make most of the run waiting for the disk.
        self.url = f"rocksdb+unsafe-nosync://{self.tmp}/db" if self.persistent else "memory://"
        self.engine = open_engine(self.url, create=True)
        self.pair = Pair(Runner(formatted(self.engine)))

    def teardown(self) -> None:
        self.engine.close()
        if self.tmp:
            shutil.rmtree(self.tmp)

    nodes = Bundle("nodes")     # (path at creation, model inode) of anything made
    dirs = Bundle("dirs")       # the same, of directories made by mkdir
    # A place: a node reached by its path (resolved now, so maybe elsewhere or gone) or
    # by its inode (maybe deleted, maybe not a directory); mostly a directory.
    dir_places = st.tuples(dirs, st.booleans())
    places = st.one_of(dir_places, dir_places, st.tuples(nodes, st.booleans()))
    # An entry: a name in a place, or the name a node was made under, looked up by its
    # path now (so unlink, rmdir and rename often find what they look for).
    entries = st.one_of(st.tuples(st.just(OWN_NAME), nodes), st.tuples(places, names))

    def place(self, where) -> int | object:
        (path, ino), by_path = where
        return self.resolve(path) if by_path else ino

    def resolve(self, path: tuple[bytes, ...]) -> int | object:
        return self.pair.check("resolve", path=b"/" + b"/".join(path))

    def entry(self, ref) -> tuple[int | object, bytes]:
        """(parent, name) of an entry reference; the root's own name is taken as 'a'."""
        where, name = ref
        if where == OWN_NAME:
            path = name[0]
            return (self.resolve(path[:-1]), path[-1]) if path else (ROOT_INO, GOOD_NAMES[0])
        return self.place(where), name

    def handle(self, parent: int, name: bytes, ino):
        if ino is FAILED:
            return multiple()
        return self.pair.model.path_of(parent) + (name,), ino

    def in_place(self, op: str, parent, name: bytes, **kwargs):
        """Run `op` on `name` in directory `parent`; a handle on the inode it returns."""
        if parent is FAILED:
            return multiple()
        return self.handle(parent, name, self.pair.check(op, parent=parent, name=name, **kwargs))

    @initialize(targets=(nodes, dirs))
    def root(self):
        return (), ROOT_INO

    # Every run starts from a small tree, so its first steps already find things to move.
    @initialize(targets=(nodes, dirs))
    def seed_dirs(self):
        made = [self.in_place("mkdir", ROOT_INO, b"a"), self.in_place("mkdir", ROOT_INO, b"b")]
        made.append(self.in_place("mkdir", made[1][1], b"c"))
        return multiple(*made)

    @initialize(target=nodes)
    def seed_files(self):
        f = self.in_place("mknod", ROOT_INO, b"f")
        self.pair.check("setattr", ino=f[1], mask=int(SetAttrMask.SIZE), size=10)
        self.pair.check("setxattr", ino=f[1], name=b"user.a", value=b"v")
        return multiple(f, self.in_place("link", ROOT_INO, b"g", ino=f[1]),
                        self.in_place("symlink", ROOT_INO, b"s", target=b"f"))

    @rule(target=nodes, where=places, name=names, kind=node_types, mode=modes)
    def mknod(self, where, name, kind, mode):
        return self.in_place("mknod", self.place(where), name, type=kind, mode=mode)

    @rule(targets=(nodes, dirs), where=places, name=names, mode=modes)
    def mkdir(self, where, name, mode):
        return self.in_place("mkdir", self.place(where), name, mode=mode)

    @rule(targets=(nodes, dirs), where=places, name=st.sampled_from(GOOD_NAMES),
          depth=st.integers(2, 40))
    def mkdir_deep(self, where, name, depth):
        parent = self.place(where)
        made = multiple()
        for _ in range(depth):
            if parent is FAILED:
                break
            ino = self.pair.check("mkdir", parent=parent, name=name)
            made = self.handle(parent, name, ino)
            parent = ino
        return made

    @rule(target=nodes, where=places, name=names, target_=targets)
    def symlink(self, where, name, target_):
        return self.in_place("symlink", self.place(where), name, target=target_)

    @rule(target=nodes, source=nodes, dst=entries)
    def link(self, source, dst):
        return self.in_place("link", *self.entry(dst), ino=source[1])

    @rule(ref=entries)
    def unlink(self, ref):
        self.in_place("unlink", *self.entry(ref))

    @rule(ref=entries)
    def rmdir(self, ref):
        self.in_place("rmdir", *self.entry(ref))

    @rule(target=nodes, src=entries, dst=entries, flags=rename_flags)
    def rename(self, src, dst, flags):
        (parent, name), (new_parent, new_name) = self.entry(src), self.entry(dst)
        if FAILED in (parent, new_parent):
            return multiple()
        return self.handle(new_parent, new_name, self.pair.check(
            "rename", parent=parent, name=name, new_parent=new_parent, new_name=new_name,
            flags=flags))

    @rule(node=nodes, cut=st.integers(0, 40), new_name=names, flags=st.sampled_from([0, EXCHANGE]))
    def rename_into_own_subtree(self, node, cut, new_name, flags):
        """Move an ancestor of `node` (by path) into `node`: EINVAL unless paths went stale."""
        path = node[0]
        if not path:
            return
        k = cut % len(path)
        parent, new_parent = self.resolve(path[:k]), self.resolve(path)
        if FAILED not in (parent, new_parent):
            self.pair.check("rename", parent=parent, name=path[k], new_parent=new_parent,
                            new_name=new_name, flags=flags)

    @rule(node=nodes, size=st.sampled_from([0, 1, 4096, 1 << 40, -1, (1 << 60) + 1]),
          mode=modes, mask=st.sampled_from([SetAttrMask.SIZE, SetAttrMask.MODE,
                                            SetAttrMask.SIZE | SetAttrMask.MODE]))
    def setattr(self, node, size, mode, mask):
        self.pair.check("setattr", ino=node[1], mask=int(mask), mode=mode, size=size)

    @rule(node=nodes, name=xattr_names, value=xattr_values, flags=st.integers(0, 3))
    def setxattr(self, node, name, value, flags):
        self.pair.check("setxattr", ino=node[1], name=name, value=value, flags=flags)

    @rule(node=nodes, name=xattr_names)
    def getxattr(self, node, name):
        self.pair.check("getxattr", ino=node[1], name=name)

    @rule(node=nodes)
    def listxattr(self, node):
        self.pair.check("listxattr", ino=node[1])

    @rule(node=nodes, name=xattr_names)
    def removexattr(self, node, name):
        self.pair.check("removexattr", ino=node[1], name=name)

    @rule(ref=st.one_of(entries, st.tuples(places, st.sampled_from([b".", b".."]))))
    def lookup(self, ref):
        self.in_place("lookup", *self.entry(ref))

    @rule(node=nodes)
    def readlink(self, node):
        self.pair.check("readlink", ino=node[1])

    @rule(where=places, limit=st.integers(1, 4))
    def readdir(self, where, limit):
        ino = self.place(where)
        if ino is not FAILED:
            self.pair.check_readdir(ino, limit)

    @precondition(lambda self: self.pair.acked)
    @rule(pick=st.integers(min_value=0))
    def replay(self, pick):
        """A retry with a used request id returns the first result and changes nothing
        (the tree invariant sees to the second half)."""
        op, rid, kwargs, first = self.pair.acked[pick % len(self.pair.acked)]
        assert self.pair.runner.call(op, rid, **kwargs) == first

    @precondition(lambda self: self.persistent)
    @rule()
    def restart(self):
        """Close the engine and serve the same directory anew: the tree invariant then
        compares what persisted with the model."""
        self.engine.close()
        self.engine = open_engine(self.url)
        self.pair.runner = Runner(self.engine)

    @invariant()
    def same_tree_and_fsck_clean(self):
        self.pair.assert_same_tree()
        report = fsck(self.engine)
        assert report.ok, str(report)
        assert report.inodes == len(self.pair.model.nodes)


class MemoryMachine(NamespaceMachine):
    persistent = False


class RocksMachine(NamespaceMachine):
    persistent = True


TestModelMemory = MemoryMachine.TestCase
TestModelMemory.settings = PROFILE
TestModelRocksDB = RocksMachine.TestCase
TestModelRocksDB.settings = PROFILE


# --- idempotency: a request id applies once -----------------------------------------------

IDEMPOTENT_CASES = {
    # op: (files made first, its arguments, calls made between it and its retry)
    "mknod": ([], dict(parent=ROOT_INO, name=b"f"),
              [("unlink", dict(parent=ROOT_INO, name=b"f"))]),
    "unlink": ([b"g"], dict(parent=ROOT_INO, name=b"g"),
               [("mknod", dict(parent=ROOT_INO, name=b"g"))]),
    "rename": ([b"x"], dict(parent=ROOT_INO, name=b"x", new_parent=ROOT_INO, new_name=b"y"),
               [("rename", dict(parent=ROOT_INO, name=b"y", new_parent=ROOT_INO, new_name=b"x"))]),
    "link": ([b"h"], dict(ino=b"h", parent=ROOT_INO, name=b"h2"),
             [("unlink", dict(parent=ROOT_INO, name=b"h2"))]),
}


def _listing(r: Runner) -> list[tuple[bytes, int, int]]:
    return [(e.name, e.ino, e.attr.nlink) for e in list_dir(r, ROOT_INO, 100, with_attrs=True)]


@pytest.mark.parametrize("engine", ["memory", "rocksdb"], indirect=True)
@pytest.mark.parametrize("op", IDEMPOTENT_CASES)
def test_request_id_returns_first_result_and_applies_once(engine, op):
    r = Runner(formatted(engine))
    files, kwargs, between = IDEMPOTENT_CASES[op]
    made = {name: r.call("mknod", parent=ROOT_INO, name=name).ino for name in files}
    kwargs = {k: made[v] if k == "ino" else v for k, v in kwargs.items()}
    first = r.call(op, b"rid-" + op.encode(), **kwargs)
    for other, other_kwargs in between:
        r.call(other, **other_kwargs)
    before = _listing(r)
    assert r.call(op, b"rid-" + op.encode(), **kwargs) == first
    assert _listing(r) == before
    assert fsck(engine).ok


# --- errnos that depend on the order of Linux's checks: each case pinned -----------------

# case: (paths to create, "/" ending a directory; the call, path strings naming inodes;
#        Linux's errno)
ORDER_CASES = {
    "rename-into-subtree-onto-entry": (["/a/", "/a/b/", "/a/b/f"], "rename",
                                       dict(parent="/", name=b"a", new_parent="/a/b",
                                            new_name=b"f"), errno.EINVAL),
    "rename-onto-ancestor": (["/a/", "/a/b/", "/a/b/f"], "rename",
                             dict(parent="/a/b", name=b"f", new_parent="/", new_name=b"a"),
                             errno.ENOTEMPTY),
    "rename-exchange-whiteout": (["/f", "/g"], "rename",
                                 dict(parent="/", name=b"f", new_parent="/", new_name=b"g",
                                      flags=EXCHANGE | WHITEOUT), errno.EINVAL),
    "rename-target-dir-first": (["/f"], "rename",
                                dict(parent="/", name=b"missing", new_parent="/f", new_name=b"x"),
                                errno.ENOTDIR),
    "link-dir-onto-entry": (["/d/", "/f"], "link", dict(ino="/d", parent="/", name=b"f"),
                            errno.EEXIST),
    "symlink-empty-target": ([], "symlink", dict(parent="/", name=b"s", target=b""),
                             errno.ENOENT),
    "symlink-path-max": ([], "symlink", dict(parent="/", name=b"s", target=b"t" * 4096),
                         errno.ENAMETOOLONG),
    "xattr-empty-name": (["/f"], "setxattr", dict(ino="/f", name=b"", value=b"v"), errno.ERANGE),
    "mknod-directory": ([], "mknod", dict(parent="/", name=b"d", type=FileType.DIRECTORY),
                        errno.EPERM),
}


@pytest.mark.parametrize("case", ORDER_CASES)
def test_errno_order_like_linux(case):
    """The model says Linux's errno for the case, and the service agrees with it."""
    paths, op, kwargs, linux_errno = ORDER_CASES[case]
    pair = Pair(Runner(formatted(open_engine("memory://"))))
    for path in paths:
        parent, _, name = path.rstrip("/").rpartition("/")
        pair.check("mkdir" if path.endswith("/") else "mknod",
                   parent=pair.model.resolve(path=parent.encode() or b"/"), name=name.encode())
    kwargs = {k: pair.model.resolve(path=v.encode()) if k in INO_ARGS else v
              for k, v in kwargs.items()}
    with pytest.raises(FsError) as model_said:
        getattr(pair.model, op)(**kwargs)
    assert model_said.value.errno == linux_errno
    assert pair.check(op, **kwargs) is FAILED
