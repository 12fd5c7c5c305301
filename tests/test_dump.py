"""dump/load: a RocksDB -> MariaDB -> RocksDB round trip keeps every key and the tree; a
dump taken while writers run is the source's state at its recorded seq; damaged files
and non-empty targets are refused; memory stays flat; the metactl commands."""

from __future__ import annotations

import io
import itertools
import pathlib
import shutil
import subprocess
import sys
import threading
import tracemalloc

import pytest

from conftest import formatted, fresh_engine_url
from engines import changelog, open_engine
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX
from metaserver import dump as dumping
from metaserver.dump import LOAD_HEADER, DumpError, DumpReader, TargetNotEmpty, dump, load
from metaserver.fsck import fsck
from metaserver.runner import Runner
from metaserver.types import ROOT_INO, FileType, Slice

METACTL = shutil.which("metactl", path=str(pathlib.Path(sys.executable).parent))


def namespace(engine) -> dict[bytes, bytes]:
    """Every key and value below the engine-reserved prefix."""
    return dict(engine.snapshot_scan(*dumping.NAMESPACE)[1])


def build(runner: Runner, files: int = 2600) -> None:
    """Directories, files with chunks and xattrs, hard links, symlinks, devices, renames,
    unlinks, idempotency records, usage deltas; `files` more in batches of 256."""
    a = runner.call("mkdir", parent=ROOT_INO, name=b"a").ino
    b = runner.call("mkdir", parent=a, name=b"b", mode=0o700, uid=7).ino
    f = runner.call("mknod", b"req-1", parent=a, name=b"f", mode=0o600, uid=5, gid=6).ino
    first = runner.call("alloc_slice_ids", count=3)
    for index in range(3):
        runner.call("write_slice", ino=f, index=index, slice=Slice(0, first + index, 4096, 0, 4096))
    runner.call("setxattr", ino=f, name=b"user.sum", value=b"\x00\xff" * 40)
    runner.call("setxattr", ino=a, name=b"user.tag", value=b"dir")
    runner.call("link", b"req-2", ino=f, parent=b, name=b"f-link")
    runner.call("link", ino=f, parent=ROOT_INO, name=b"f-top")
    runner.call("symlink", parent=b, name=b"up", target=b"../f")
    runner.call("mknod", parent=ROOT_INO, name=b"fifo", type=FileType.FIFO)
    runner.call("mknod", parent=ROOT_INO, name=b"dev", type=FileType.CHAR_DEVICE, rdev=0x0801)
    runner.call("mknod", parent=ROOT_INO, name=b"gone")
    runner.call("unlink", b"req-3", parent=ROOT_INO, name=b"gone")
    runner.call("rename", parent=a, name=b"b", new_parent=ROOT_INO, new_name=b"b-moved")
    many = runner.call("mkdir", parent=ROOT_INO, name=b"many").ino
    for start in range(0, files, 256):
        runner.call_atomic([("mknod", {"parent": many, "name": b"file-%06d" % i})
                            for i in range(start, min(files, start + 256))])


def tree(runner: Runner, ino: int = ROOT_INO, path: bytes = b"") -> list[tuple]:
    """What a client sees: every path with its attr, target, xattrs and chunks."""
    seen = []
    cursor = b""
    while True:
        page = runner.call("readdir", ino=ino, cursor=cursor, with_attrs=True)
        for e in page.entries:
            a = e.attr
            item = [path + b"/" + e.name, a.ino, a.type, a.mode, a.uid, a.gid, a.nlink, a.size,
                    a.rdev, a.mtime_ns,
                    {n: runner.call("getxattr", ino=a.ino, name=n)
                     for n in runner.call("listxattr", ino=a.ino)}]
            if a.type == FileType.SYMLINK:
                item.append(runner.call("readlink", ino=a.ino))
            if a.type == FileType.REGULAR:
                item.append([runner.call("read_chunk", ino=a.ino, index=i) for i in range(3)])
            seen.append(tuple(item))
            if a.type == FileType.DIRECTORY:
                seen += tree(runner, a.ino, path + b"/" + e.name)
        if not page.cursor:
            return seen
        cursor = page.cursor


def dumped(engine, **options) -> bytes:
    out = io.BytesIO()
    dump(engine, out, **options)
    return out.getvalue()


def change_records(engine, after: int = 0) -> list[changelog.ChangeRecord]:
    return [changelog.decode(v) for _, v in engine.snapshot_scan(CHANGELOG_PREFIX, CHANGELOG_END)[1]
            if changelog.decode(v).seq > after]


@pytest.fixture
def source(tmp_path):
    engine = open_engine(f"rocksdb://{tmp_path}/source", create=True)
    build(Runner(formatted(engine)))
    yield engine
    engine.close()


@pytest.fixture
def empty(tmp_path):
    engine = open_engine(f"rocksdb://{tmp_path}/empty", create=True)
    yield engine
    engine.close()


def test_round_trip_rocksdb_mariadb_rocksdb(request, monkeypatch, tmp_path, source):
    monkeypatch.setattr(dumping, "LOAD_BATCH_KEYS", 1000)    # several load transactions
    keys, client_view = namespace(source), tree(Runner(source))
    first = dumped(source)
    info = DumpReader(io.BytesIO(first)).info
    assert (info.seq, info.source, info.compression) == (source.last_seq(), "rocksdb", "gzip")

    maria = open_engine(fresh_engine_url(request, "mariadb", tmp_path), create=True)
    try:
        into_maria = load(maria, io.BytesIO(first))
        assert namespace(maria) == keys
        assert (into_maria.keys, into_maria.source_seq) == (len(keys), info.seq)
        assert into_maria.transactions > 1        # bounded transactions, not one big one
        log = change_records(maria)
        assert [r.header for r in log] == [LOAD_HEADER] * into_maria.transactions
        assert sum(len(r.writes) for r in log) == len(keys)
        second = dumped(maria, compress=False)
    finally:
        maria.close()

    back = open_engine(f"rocksdb://{tmp_path}/back", create=True)
    try:
        summary = load(back, io.BytesIO(second))
        assert (summary.source, summary.source_seq) == ("mysql+pymysql", into_maria.seq)
        assert namespace(back) == keys
        runner = Runner(back)
        assert tree(runner) == client_view
        assert fsck(back).ok
        # The copy is a working namespace: new inodes do not collide with loaded ones.
        new = runner.call("mknod", parent=ROOT_INO, name=b"after-load")
        assert new.ino not in {e[1] for e in client_view}
        assert runner.call("mknod", b"req-1", parent=ROOT_INO, name=b"ignored").name == b"f"
    finally:
        back.close()


class PausingScan:
    """An engine whose snapshot_scan lets writers commit between pages of the dump."""

    def __init__(self, engine, writers: Writers) -> None:
        self.url = engine.url
        self._engine, self._writers = engine, writers

    def snapshot_scan(self, start, end):
        seq, pairs = self._engine.snapshot_scan(start, end)
        return seq, self._paused(pairs)

    def _paused(self, pairs):
        for n, pair in enumerate(pairs):
            if n % 500 == 0:
                self._writers.wait_for(5)
            yield pair


class Writers:
    """Threads creating, linking, renaming and removing files until stopped."""

    def __init__(self, runner: Runner, count: int = 2) -> None:
        self.runner = runner
        self.done = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(w,)) for w in range(count)]

    def _work(self, w: int) -> None:
        r = self.runner
        home = r.call("mkdir", parent=ROOT_INO, name=b"w%d" % w).ino
        for i in itertools.count():
            if self._stop.is_set():
                return
            name = b"f%d" % i
            f = r.call("mknod", parent=home, name=name).ino
            r.call("link", ino=f, parent=ROOT_INO, name=b"w%d-%d" % (w, i))
            r.call("rename", parent=home, name=name, new_parent=home, new_name=name + b"-r")
            if i % 2:
                r.call("unlink", parent=home, name=name + b"-r")
            with self._cond:
                self.done += 1
                self._cond.notify_all()

    def wait_for(self, more: int) -> None:
        """Until `more` further rounds have committed (bounded, so a stuck writer fails
        the test's assertions instead of hanging it)."""
        with self._cond:
            target = self.done + more
            self._cond.wait_for(lambda: self.done >= target, timeout=30)

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def test_dump_while_writers_run_is_the_state_at_its_seq(tmp_path, source):
    with Writers(Runner(source)) as writers:
        data = dumped(PausingScan(source, writers))
    reader = DumpReader(io.BytesIO(data))
    state = dict(reader.records())
    later = change_records(source, after=reader.info.seq)
    assert len(later) >= 10       # writers committed while the dump was being read
    for record in later:          # replaying what came after gives the source's state now
        for key, value in record.writes:
            if key < dumping.NAMESPACE[1]:
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
    assert state == namespace(source)

    copy = open_engine("memory://")
    load(copy, io.BytesIO(data))
    assert fsck(copy).ok


def test_load_refuses_a_non_empty_target(source, empty):
    data = dumped(source)
    formatted(empty)            # `metaserver format` ran on it
    before = namespace(empty)
    with pytest.raises(TargetNotEmpty, match="already holds a namespace"):
        load(empty, io.BytesIO(data))
    assert namespace(empty) == before


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


DAMAGE = {
    "not a dump": (lambda d: b"hello" + d, "not a metaserver dump"),
    "newer format": (lambda d: d[:8] + b"\x00\x02" + d[10:], "format version 2"),
    "header cut": (lambda d: d[:30], "ends inside its header"),
    "cut in the middle": (lambda d: d[:len(d) // 2], "truncated"),
    "last byte missing": (lambda d: d[:-1], "truncated"),
    "a byte changed": (lambda d: flip(d, len(d) // 2), "corrupt compressed data|CRC"),
    "garbage after the end": (lambda d: d + b"\x00junk", "after the compressed stream"),
}
PLAIN_DAMAGE = {   # no compression: our own checks are all there is
    "a byte changed": (lambda d: flip(d, len(d) // 2), "fails its CRC"),
    "trailer changed": (lambda d: flip(d, len(d) - 5), "SHA-256"),
    "count changed": (lambda d: flip(d, len(d) - 33), "trailer counts"),
    "cut before the trailer": (lambda d: d[:-40], "truncated"),
    "garbage after the end": (lambda d: d + b"x", "data after the trailer"),
}


@pytest.mark.parametrize("compress,damage", [(True, d) for d in DAMAGE]
                         + [(False, d) for d in PLAIN_DAMAGE])
def test_damaged_files_are_refused_before_anything_is_written(source, empty, compress, damage):
    spoil, message = (DAMAGE if compress else PLAIN_DAMAGE)[damage]
    with pytest.raises(DumpError, match=message):
        load(empty, io.BytesIO(spoil(dumped(source, compress=compress))))
    assert namespace(empty) == {}


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like standard input."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("compress", [True, False])
def test_damage_in_a_stream_stops_the_load_and_says_how_far_it_got(monkeypatch, source, empty,
                                                                   compress):
    monkeypatch.setattr(dumping, "BLOCK_BYTES", 16 << 10)     # many blocks ...
    monkeypatch.setattr(dumping, "LOAD_BATCH_KEYS", 1000)     # ... and transactions
    data = dumped(source, compress=compress)
    with pytest.raises(DumpError, match=r"truncated; \d+ keys were loaded before it: discard"):
        load(empty, io.BufferedReader(Pipe(data[:-300])))
    loaded, original = namespace(empty), namespace(source)
    assert loaded and loaded.items() <= original.items() and len(loaded) < len(original)
    with pytest.raises(TargetNotEmpty):
        load(empty, io.BytesIO(data))


def test_memory_stays_flat(tmp_path):
    """100k keys (50 MB) each way; the peak of Python memory stays far below that.
    (More keys would only make tracemalloc slower: memory per key is what is bounded.)"""
    keys, value = 100_000, bytes(range(256)) * 2    # like a large xattr
    source = open_engine(f"rocksdb+unsafe-nosync://{tmp_path}/big", create=True)
    for start in range(0, keys, 20_000):
        txn = source.begin()
        for i in range(start, start + 20_000):
            txn.put(b"A%016dX" % i, value)
        txn.commit()
    size = keys * (18 + len(value))
    path = tmp_path / "big.dump"
    target = open_engine(f"rocksdb+unsafe-nosync://{tmp_path}/copy", create=True)
    try:
        tracemalloc.start()
        with open(path, "wb") as out:
            written = dump(source, out)
        dump_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with open(path, "rb") as src:
            loaded = load(target, src)
        load_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert written.keys == loaded.keys == keys and written.bytes == loaded.bytes == size
        assert dump_peak < size / 8 and load_peak < size / 5, (dump_peak, load_peak)
    finally:
        source.close()
        target.close()


def metactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([METACTL, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def stopped_source(tmp_path) -> tuple[str, dict[bytes, bytes]]:
    """URL of a built RocksDB namespace no process has open (RocksDB admits one), and
    its keys."""
    url = f"rocksdb://{tmp_path}/stopped"
    engine = open_engine(url, create=True)
    try:
        build(Runner(formatted(engine)), files=300)
        return url, namespace(engine)
    finally:
        engine.close()


def test_metactl_dump_and_load(tmp_path, stopped_source):
    src_url, keys = stopped_source
    copy_url = f"sqlite:///{tmp_path}/copy.sqlite"
    path = str(tmp_path / "ns.dump")

    done = metactl("dump", "--meta-url", src_url, path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"dumped {len(keys)} keys (") and " at seq " in done.stdout
    done = metactl("load", "--meta-url", copy_url, path)
    assert done.returncode == 0 and done.stdout.startswith(f"loaded {len(keys)} keys (")

    again = metactl("load", "--meta-url", copy_url, path)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith(f"metactl: {copy_url}: the target already holds a namespace")
    assert again.stderr.count("\n") == 1

    pathlib.Path(path).write_bytes(pathlib.Path(path).read_bytes()[:-10])
    cut = metactl("load", "--meta-url", f"sqlite:///{tmp_path}/other.sqlite", path)
    assert cut.returncode == 1 and cut.stderr.startswith(f"metactl: {path}: damaged dump")
    assert cut.stderr.rstrip().endswith("nothing was loaded")

    copy = open_engine(copy_url)
    try:
        assert namespace(copy) == keys
    finally:
        copy.close()


def test_metactl_dump_to_a_pipe(tmp_path, stopped_source):
    src_url, keys = stopped_source
    piped = subprocess.run(
        f"{METACTL} dump --meta-url {src_url} - | "
        f"{METACTL} load --meta-url sqlite:///{tmp_path}/piped.sqlite -",
        shell=True, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0
    assert piped.stderr.startswith(f"dumped {len(keys)} keys")
    assert piped.stdout.startswith(f"loaded {len(keys)} keys")


def test_dump_and_repair_do_not_import_grpc():
    code = "import sys, metaserver.dump, metaserver.repair; sys.exit('grpc' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
