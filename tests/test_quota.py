"""Directory quotas and summaries: a quota is never exceeded, even by creates racing
from several threads and runners; summaries equal a model and a walk after random
operations (quotas, renames across them, hard links, truncates, folds); EDQUOT over
gRPC; metactl's quota and summary commands against a real `metaserver serve`, whose
follower sees the quotas; fsck/repair and dump/load know the keys."""

from __future__ import annotations

import copy
import errno
import io
import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import format_url, formatted, fresh_engine_url
from engines import open_engine
from metaserver import schema
from metaserver.client import Client
from metaserver.dump import dump, load
from metaserver.errors import FsError
from metaserver.fsck import fsck
from metaserver.repair import repair
from metaserver.runner import Runner
from metaserver.service.maintenance import Maintenance
from metaserver.testing.metaserver_process import ServerProcess, wait_for
from metaserver.types import ROOT_INO, SetAttrMask, Slice, Summary

METACTL = shutil.which("metactl", path=str(pathlib.Path(sys.executable).parent))
_names = itertools.count()
_FIXTURES = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["memory", "rocksdb", "mariadb"])
def store(request, tmp_path):
    engine = formatted(open_engine(fresh_engine_url(request, request.param, tmp_path),
                                   create=True))
    yield engine
    engine.close()


def _fresh_dir(r: Runner) -> int:
    return r.call("mkdir", parent=ROOT_INO, name=b"t%d" % next(_names)).ino


def _grow(r: Runner, ino: int, end: int) -> None:
    r.call("write_slice", ino=ino, index=0, slice=Slice(0, 1, end, 0, end))


def _run_threads(count: int, work) -> list:
    outcomes: list = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for outcome in work(i):
            with lock:
                outcomes.append(outcome)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _attempt(fn) -> str | int:
    try:
        fn()
        return "ok"
    except FsError as exc:
        return exc.errno


@settings(max_examples=3, **_FIXTURES)
@given(limit=st.integers(1, 10), threads=st.integers(2, 4), each=st.integers(1, 6))
def test_quota_never_exceeded_under_concurrent_creates(store, limit, threads, each):
    runners = [Runner(store), Runner(store)]        # two servers over one store
    top = _fresh_dir(runners[0])
    sub = runners[0].call("mkdir", parent=top, name=b"sub").ino
    runners[0].call("set_quota", ino=top, max_inodes=limit + 1)   # sub is one of them

    def work(i):
        r = runners[i % 2]
        for j in range(each):
            op = "mkdir" if j % 3 == 2 else "create"
            yield _attempt(lambda: r.call(op, parent=(top, sub)[j % 2], name=b"n%d.%d" % (i, j)))
    outcomes = _run_threads(threads, work)
    made = outcomes.count("ok")
    assert set(outcomes) <= {"ok", errno.EDQUOT}
    assert made == min(limit, threads * each)
    assert runners[1].call("get_quota", ino=top).used_inodes == made + 1
    assert runners[1].call("check_tree", ino=top).ok


@settings(max_examples=3, **_FIXTURES)
@given(limit=st.integers(1, 4000), threads=st.integers(2, 4),
       steps=st.lists(st.integers(1, 500), min_size=1, max_size=6))
def test_byte_quota_never_exceeded_under_concurrent_writes(store, limit, threads, steps):
    r = Runner(store)
    top = _fresh_dir(r)
    files = [r.call("create", parent=top, name=b"f%d" % i).ino for i in range(threads)]
    r.call("set_quota", ino=top, max_bytes=limit)

    def work(i):
        end = 0
        for step in steps:
            end += step
            yield _attempt(lambda: _grow(r, files[i], end))
    outcomes = _run_threads(threads, work)
    assert set(outcomes) <= {"ok", errno.EDQUOT}
    sizes = sum(r.call("getattr", ino=f).size for f in files)
    quota = r.call("get_quota", ino=top)
    assert quota.used_bytes == sizes <= limit
    assert r.call("summary", ino=top).size == sizes


# --- a model of the tree: entries, sizes, quotas -----------------------------------------

class Model:
    def __init__(self) -> None:
        self.entries: dict[tuple[int, bytes], int] = {}
        self.is_dir: dict[int, bool] = {ROOT_INO: True}
        self.size: dict[int, int] = {}
        self.quotas: dict[int, tuple[int, int]] = {}

    def children(self, d: int) -> list[tuple[bytes, int]]:
        return [(n, i) for (p, n), i in self.entries.items() if p == d]

    def tree(self, d: int) -> Summary:
        total, stack = Summary(), [d]
        while stack:
            for _, ino in self.children(stack.pop()):
                if self.is_dir[ino]:
                    total.dirs += 1
                    stack.append(ino)
                else:
                    total.files += 1
                    total.size += self.size[ino]
        return total

    def dirs(self) -> list[int]:
        return [ROOT_INO] + [i for i in self.entries.values() if self.is_dir[i]]

    def inside(self, d: int, of: int) -> bool:
        """Directory `d` is `of` or below it."""
        return d == of or any(self.inside(d, c) for _, c in self.children(of) if self.is_dir[c])

    def over_quota(self, after: "Model") -> bool:
        for q, (max_bytes, max_inodes) in self.quotas.items():
            old, new = self.tree(q), after.tree(q)
            if (new.size > old.size and max_bytes and new.size > max_bytes) or \
                    (new.inodes > old.inodes and max_inodes and new.inodes > max_inodes):
                return True
        return False


def _random_step(data, model: Model, r: Runner):
    """One operation valid in the model: (changed model, the call that makes it)."""
    after = copy.deepcopy(model)
    dirs = model.dirs()
    names = list(model.entries)
    files = [k for k in names if not model.is_dir[model.entries[k]]]
    kind = data.draw(st.sampled_from(
        ["create", "create", "mkdir", "write", "truncate", "unlink", "rmdir", "rename", "link",
         "set_quota", "delete_quota", "fold"]))
    name = b"e%d" % next(_names)
    if kind in ("create", "mkdir"):
        parent = data.draw(st.sampled_from(dirs))
        after.entries[parent, name] = placeholder = -next(_names)   # the inode is not known yet
        after.is_dir[placeholder], after.size[placeholder] = kind == "mkdir", 0

        def call():
            ino = r.call(kind, parent=parent, name=name).ino
            after.entries[parent, name] = ino
            after.is_dir[ino] = after.is_dir.pop(placeholder)
            after.size[ino] = after.size.pop(placeholder)
        return after, call
    if kind in ("write", "truncate", "link") and files:
        key = data.draw(st.sampled_from(files))
        ino = model.entries[key]
        if kind == "link":
            parent = data.draw(st.sampled_from(dirs))
            after.entries[parent, name] = ino
            return after, lambda: r.call("link", ino=ino, parent=parent, name=name)
        size = data.draw(st.integers(0, 3000))
        if kind == "write":
            after.size[ino] = max(size + 1, model.size[ino])
            return after, lambda: _grow(r, ino, size + 1)
        after.size[ino] = size
        return after, lambda: r.call("setattr", ino=ino, mask=int(SetAttrMask.SIZE), size=size)
    if kind == "unlink" and files:
        key = data.draw(st.sampled_from(files))
        del after.entries[key]
        return after, lambda: r.call("unlink", parent=key[0], name=key[1])
    empty = [k for k in names if model.is_dir[model.entries[k]]
             and not model.children(model.entries[k])]
    if kind == "rmdir" and empty:
        key = data.draw(st.sampled_from(empty))
        del after.entries[key]
        after.quotas.pop(model.entries[key], None)
        return after, lambda: r.call("rmdir", parent=key[0], name=key[1])
    if kind == "rename" and names:
        key = data.draw(st.sampled_from(names))
        ino = model.entries[key]
        parent = data.draw(st.sampled_from(dirs))
        if model.is_dir[ino] and model.inside(parent, ino):
            return model, None
        after.entries[parent, name] = after.entries.pop(key)
        return after, lambda: r.call("rename", parent=key[0], name=key[1], new_parent=parent,
                                     new_name=name)
    quotable = [d for d in dirs if d != ROOT_INO]
    if kind == "set_quota" and quotable:
        d = data.draw(st.sampled_from(quotable))
        limits = (data.draw(st.sampled_from([0, 2000, 6000])), data.draw(st.integers(0, 8)))
        after.quotas[d] = limits
        return after, lambda: r.call("set_quota", ino=d, max_bytes=limits[0],
                                     max_inodes=limits[1])
    if kind == "delete_quota" and model.quotas:
        d = data.draw(st.sampled_from(sorted(model.quotas)))
        del after.quotas[d]
        return after, lambda: r.call("delete_quota", ino=d)
    if kind == "fold":
        return model, lambda: Maintenance(r, interval_s=1, request_ttl_s=60,
                                          changelog_keep=100).fold_tree_deltas()
    return model, None


@pytest.mark.parametrize("engine_name", ["memory", "rocksdb"])
@settings(max_examples=15, **_FIXTURES)
@given(data=st.data())
def test_summaries_and_quotas_match_a_model(engine_name, tmp_path_factory, data):
    url = "memory://" if engine_name == "memory" else \
        f"rocksdb://{tmp_path_factory.mktemp('model')}/db"
    engine = formatted(open_engine(url, create=True))
    try:
        r, model = Runner(engine), Model()
        for _ in range(data.draw(st.integers(5, 40))):
            after, call = _random_step(data, model, r)
            if call is None:
                continue
            refused = model.over_quota(after)
            outcome = _attempt(call)
            assert outcome == (errno.EDQUOT if refused else "ok"), (after.quotas, outcome)
            if not refused:
                model = after
            for d in model.dirs():
                assert r.call("summary", ino=d) == model.tree(d)
            for d, (max_bytes, max_inodes) in model.quotas.items():
                quota = r.call("get_quota", ino=d)
                used = model.tree(d)
                assert (quota.max_bytes, quota.max_inodes) == (max_bytes, max_inodes)
                assert (quota.used_bytes, quota.used_inodes) == (used.size, used.inodes)
        assert sorted(q.ino for q in r.call("list_quotas")) == sorted(model.quotas)
        assert r.call("check_tree", ino=ROOT_INO).ok
        assert fsck(engine).ok, str(fsck(engine))
    finally:
        engine.close()


# --- over gRPC, through metactl, on a follower -----------------------------------------

def test_edquot_over_grpc_and_the_client_methods(server):
    with Client(server.address) as c:
        top = c.mkdir(ROOT_INO, "q").ino
        quota = c.set_quota(top, max_inodes=1, max_bytes=100)
        assert (quota.max_inodes, quota.used_inodes) == (1, 0)
        f = c.create(top, "a")
        with pytest.raises(OSError) as caught:
            c.create(top, "b")
        assert caught.value.errno == errno.EDQUOT
        with pytest.raises(OSError) as caught:
            c.write_slice(f.ino, 0, Slice(0, 1, 101, 0, 101))
        assert caught.value.errno == errno.EDQUOT
        c.write_slice(f.ino, 0, Slice(0, 1, 100, 0, 100))
        assert c.summary(ROOT_INO) == Summary(1, 1, 100)
        assert [q.ino for q in c.list_quotas()] == [top]
        assert c.check_tree(top).ok
        c.delete_quota(top)
        c.create(top, "b")
        with pytest.raises(FileNotFoundError):
            c.get_quota(top)
        with pytest.raises(OSError) as caught:
            c.set_quota(ROOT_INO, max_inodes=5)
        assert caught.value.errno == errno.EINVAL


def test_metactl_quota_and_summary_against_serve_and_a_follower(tmp_path):
    primary = ServerProcess(format_url(f"rocksdb://{tmp_path}/primary")).start()
    follower = None
    try:
        env = {**os.environ, "METASERVER_ADDRESS": primary.address}

        def metactl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([METACTL, *args], env=env, capture_output=True, text=True,
                                  timeout=60)

        def ok(*args: str) -> str:
            done = metactl(*args)
            assert (done.returncode, done.stderr) == (0, ""), done.stderr
            return done.stdout

        ok("mkdir", "-p", "/q/sub")
        assert "/q " in ok("quota", "set", "/q", "--inodes", "3", "--capacity", "1K")
        ok("touch", "/q/a")
        refused = metactl("touch", "/q/sub/b", "/q/c")
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith("Disk quota exceeded"), refused.stderr
        row = ok("quota", "get", "/q").splitlines()[1].split()
        assert row == ["/q", "1.0K", "0", "0%", "3", "3", "100%"]
        assert ok("quota", "list").splitlines()[1].split()[0] == "/q"
        assert ok("summary", "/").splitlines()[1].split() == ["/", "0", "2", "2"]
        assert ok("quota", "check").strip() == "/q: ok (1 dirs, 2 files, 0 bytes)"
        ok("quota", "set", "/q", "--inodes", "0")
        ok("touch", "/q/c")
        assert ok("quota", "get", "/q").splitlines()[1].split()[4:6] == ["-", "4"]
        usage = metactl("quota", "set", "/q", "--capacity", "lots")
        assert usage.returncode == 1 and "not a size" in usage.stderr

        follower = ServerProcess(f"rocksdb://{tmp_path}/follower", follow=primary.address).start()
        with Client(primary.address) as c, Client(follower.address) as fc:
            want = c.get_quota(c.resolve("/q").ino)
            wait_for(lambda: _quota_or_none(fc, want.ino) == want, what="quota on the follower")
            assert fc.summary(ROOT_INO) == c.summary(ROOT_INO)
        ok("quota", "delete", "/q")
        for args, said in ((("quota", "get", "/q"), "metactl: /q: no quota"),
                           (("quota", "delete", "/q"), "metactl: /q: no quota"),
                           (("quota", "get", "/nothing"),
                            "metactl: /nothing: No such file or directory")):
            done = metactl(*args)
            assert (done.returncode, done.stderr.strip()) == (1, said), done.stderr
    finally:
        for proc in (follower, primary):
            if proc is not None:
                proc.kill()


def _quota_or_none(client: Client, ino: int):
    try:
        return client.get_quota(ino)
    except OSError:
        return None


# --- fsck, repair, dump -----------------------------------------------------------------

def test_fsck_finds_wrong_stats_and_usage_repair_fixes_and_dump_carries_them():
    engine = formatted(open_engine("memory://"))
    r = Runner(engine)
    top = _fresh_dir(r)
    sub = r.call("mkdir", parent=top, name=b"s").ino
    f = r.call("create", parent=sub, name=b"f").ino
    _grow(r, f, 50)
    r.call("link", ino=f, parent=top, name=b"f2")
    r.call("set_quota", ino=top, max_inodes=10)
    assert fsck(engine).ok
    with engine.begin() as txn:
        txn.put(schema.tree_key(sub), schema.encode_tree(Summary(5, 5, 5)))
        txn.put(schema.usage_key(top), schema.encode_tree(Summary(1, 1, 1)))
        txn.put(schema.quota_key(f), schema.encode_quota(1, 1))
        txn.commit()
    report = fsck(engine)
    assert {(p.kind, p.ino) for p in report.problems} == \
        {("stray_tree", f), ("tree_totals", sub), ("tree_totals", top), ("tree_totals", 0)}
    assert not r.call("check_tree", ino=top).ok
    repair(engine, report)
    assert fsck(engine).ok, str(fsck(engine))
    assert r.call("get_quota", ino=top).used_inodes == 3

    out = io.BytesIO()
    dump(engine, out)
    copy_ = open_engine("memory://")
    load(copy_, io.BytesIO(out.getvalue()))
    assert Runner(copy_).call("get_quota", ino=top) == r.call("get_quota", ino=top)
    assert fsck(copy_).ok


def _as_before_directory_stats(engine) -> None:
    """Make `engine`'s namespace look as one made before directory stats were kept: no
    `T` stats, no `W` deltas, no treeStats counter."""
    with engine.begin() as txn:
        stale = [k for k, _ in txn.scan(schema.TREE_DELTA_PREFIX,
                                        schema.TREE_DELTA_PREFIX + b"\xff")]
        stale += [k for k, _ in txn.scan(schema.INODE_PREFIX, b"B")
                  if k == schema.tree_key(schema.parse_inode_key(k).ino)]
        for key in stale + [schema.counter_key(schema.STATS_COUNTER)]:
            txn.delete(key)
        txn.commit()


def test_a_namespace_from_before_directory_stats_refuses_summaries_until_they_are_built():
    """Yesterday's namespace under today's server: summaries and new quotas are refused
    with a way out (not answered from partial stats), fsck does not call it damaged, and
    `quota check --repair /` builds the stats once for good."""
    engine = formatted(open_engine("memory://"))
    r = Runner(engine)
    top = _fresh_dir(r)
    for i in range(3):
        _grow(r, r.call("create", parent=top, name=b"f%d" % i).ino, 10)
    _as_before_directory_stats(engine)
    assert fsck(engine).ok, str(fsck(engine))
    r.call("create", parent=top, name=b"after-upgrade")     # stats deltas from now on
    Maintenance(r, interval_s=1, request_ttl_s=60, changelog_keep=100).fold_tree_deltas()
    for op, args in (("summary", dict(ino=top)), ("set_quota", dict(ino=top, max_inodes=9))):
        with pytest.raises(FsError) as info:
            r.call(op, **args)
        assert info.value.errno == errno.EOPNOTSUPP
        assert "quota check --repair /" in str(info.value)
    assert fsck(engine).ok, str(fsck(engine))
    assert r.call("check_tree", ino=ROOT_INO, repair=True).repaired
    assert r.call("summary", ino=top) == Summary(0, 4, 30)
    assert r.call("summary", ino=ROOT_INO) == Summary(1, 4, 30)
    assert r.call("set_quota", ino=top, max_inodes=9).used_inodes == 4
    assert fsck(engine).ok, str(fsck(engine))
