"""Chunk map, truncate, setattr times, statfs accounting and change records, in process."""

from __future__ import annotations

import errno

import pytest

from engines import changelog
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX
from metaserver.errors import FsError
from metaserver.ops.chunks import visible_fragments
from metaserver.runner import Runner
from metaserver.schema import ChangeHeader, decode_change_header
from metaserver.types import CHUNK_SIZE, FileType, SetAttrMask, Slice

from conftest import engine_url, formatted


@pytest.fixture(params=["memory", "rocksdb"])
def runner(request, tmp_path):
    from engines import open_engine
    eng = open_engine(engine_url(request.param, tmp_path), create=True)
    yield Runner(formatted(eng), dir_mtime_skip_ns=0)
    eng.close()


def new_file(runner, name=b"f"):
    return runner.call("mknod", b"mk-" + name, parent=1, name=name).ino


def test_write_slice_extends_size_and_reads_back(runner):
    ino = new_file(runner)
    first = runner.call("alloc_slice_ids", b"a1", count=10)
    assert runner.call("alloc_slice_ids", b"a2", count=5) == first + 10
    before = runner.call("getattr", ino=ino)
    a = runner.call("write_slice", b"w1", ino=ino, index=0, slice=Slice(0, first, 4096, 0, 4096))
    assert a.size == 4096 and a.mtime_ns >= before.mtime_ns
    a = runner.call("write_slice", b"w2", ino=ino, index=2, slice=Slice(100, first + 1, 50, 0, 50))
    assert a.size == 2 * CHUNK_SIZE + 150
    assert runner.call("read_chunk", ino=ino, index=0) == [Slice(0, first, 4096, 0, 4096)]
    assert runner.call("read_chunk", ino=ino, index=1) == []
    assert runner.call("statfs").used_bytes == a.size


@pytest.mark.parametrize("bad", [
    Slice(0, 1, 10, 0, 0),                # empty
    Slice(CHUNK_SIZE - 5, 1, 10, 0, 10),  # past the chunk
    Slice(0, 1, 10, 5, 10),               # past the object
    Slice(0, 0, 10, 0, 10),               # no object id
])
def test_write_slice_rejects_bad_slices(runner, bad):
    ino = new_file(runner)
    with pytest.raises(FsError) as e:
        runner.call("write_slice", b"bad", ino=ino, index=0, slice=bad)
    assert e.value.errno == errno.EINVAL
    assert runner.call("getattr", ino=ino).size == 0


def test_chunk_ops_on_directories_and_missing_inodes(runner):
    d = runner.call("mkdir", b"d", parent=1, name=b"d").ino
    for ino, code in ((d, errno.EISDIR), (999, errno.ENOENT)):
        with pytest.raises(FsError) as e:
            runner.call("read_chunk", ino=ino, index=0)
        assert e.value.errno == code


def test_compaction_keeps_what_readers_see():
    slices = [Slice(0, 1, 100, 0, 100), Slice(20, 2, 10, 0, 10), Slice(50, 0, 0, 0, 50),
              Slice(90, 3, 30, 0, 30)]
    assert visible_fragments(slices) == [
        Slice(0, 1, 100, 0, 20), Slice(20, 2, 10, 0, 10), Slice(30, 1, 100, 30, 20),
        Slice(90, 3, 30, 0, 30)]


def test_compact_chunk_releases_hidden_slices(runner):
    ino = new_file(runner)
    for n, s in enumerate([Slice(0, 7, 10, 0, 10), Slice(0, 8, 10, 0, 10), Slice(10, 9, 5, 0, 5)]):
        runner.call("write_slice", b"w%d" % n, ino=ino, index=0, slice=s)
    result = runner.call("compact_chunk", b"c", ino=ino, index=0)
    assert result.slices == [Slice(0, 8, 10, 0, 10), Slice(10, 9, 5, 0, 5)]
    assert result.released == [7]
    assert runner.call("read_chunk", ino=ino, index=0) == result.slices


def test_truncate_shrink_masks_old_bytes_and_drops_chunks(runner):
    ino = new_file(runner)
    runner.call("write_slice", b"w1", ino=ino, index=0, slice=Slice(0, 5, 1000, 0, 1000))
    runner.call("write_slice", b"w2", ino=ino, index=3, slice=Slice(0, 6, 1000, 0, 1000))
    a = runner.call("setattr", b"t1", ino=ino, mask=SetAttrMask.SIZE, size=300)
    assert a.size == 300
    assert runner.call("read_chunk", ino=ino, index=3) == []
    # Extending again must read zeros past 300, not the old bytes: a hole masks them.
    runner.call("setattr", b"t2", ino=ino, mask=SetAttrMask.SIZE, size=1000)
    assert visible_fragments(runner.call("read_chunk", ino=ino, index=0)) == [Slice(0, 5, 1000, 0, 300)]
    assert runner.call("statfs").used_bytes == 1000


def test_setattr_rules(runner):
    ino = new_file(runner)
    d = runner.call("mkdir", b"d", parent=1, name=b"d").ino
    a = runner.call("setattr", b"s1", ino=ino, mask=SetAttrMask.MODE | SetAttrMask.UID,
                    mode=0o4755, uid=42)
    assert (a.mode, a.uid, a.type) == (0o4755, 42, FileType.REGULAR)
    a = runner.call("setattr", b"s2", ino=ino, mask=SetAttrMask.ATIME | SetAttrMask.MTIME,
                    atime_ns=5, mtime_ns=7)
    assert (a.atime_ns, a.mtime_ns) == (5, 7) and a.ctime_ns > 7
    for target, size, code in ((d, 0, errno.EISDIR), (ino, -1, errno.EINVAL),
                               (ino, 1 << 61, errno.EFBIG)):
        with pytest.raises(FsError) as e:
            runner.call("setattr", b"bad%d" % size, ino=target, mask=SetAttrMask.SIZE, size=size)
        assert e.value.errno == code
    with pytest.raises(FsError) as e:
        runner.call("setattr", b"mask", ino=ino, mask=1 << 20)
    assert e.value.errno == errno.EINVAL


def test_parent_times_follow_linux(runner):
    d = runner.call("mkdir", b"d", parent=1, name=b"d").ino
    before = runner.call("getattr", ino=d)
    runner.call("mknod", b"f", parent=d, name=b"f")
    after = runner.call("getattr", ino=d)
    assert after.mtime_ns > before.mtime_ns and after.ctime_ns > before.ctime_ns
    runner.call("unlink", b"u", parent=d, name=b"f")
    assert runner.call("getattr", ino=d).mtime_ns > after.mtime_ns


def test_statfs_counts_inodes_and_folding_keeps_totals(runner):
    base = runner.call("statfs").used_inodes
    inos = [new_file(runner, b"f%d" % i) for i in range(5)]
    runner.call("unlink", b"u", parent=1, name=b"f0")
    assert runner.call("statfs").used_inodes == base + 4
    assert runner.fold_usage(page=2) > 0        # several pages
    assert runner.call("statfs").used_inodes == base + 4
    assert runner.fold_usage() == 0
    new_file(runner, b"late")
    assert runner.fold_usage() == 1
    assert runner.call("statfs").used_inodes == base + 5
    assert len(inos) == 5


def test_every_mutation_appends_one_change_record(runner):
    engine = runner.engine
    new_file(runner)                  # reserves a range of inode ids (its own records)
    start = engine.last_seq()
    runner.call("mkdir", b"rid-1", parent=1, name=b"x")
    runner.call("rename", b"rid-2", parent=1, name=b"x", new_parent=1, new_name=b"y")
    runner.call("getattr", ino=1)                      # reads append nothing
    with pytest.raises(FsError):
        runner.call("rmdir", b"rid-3", parent=1, name=b"nope")   # failures append nothing
    with engine.snapshot() as snap:
        records = [changelog.decode(v) for _, v in snap.scan(CHANGELOG_PREFIX, CHANGELOG_END)
                   if changelog.decode(v).seq > start]
    assert [r.seq for r in records] == [start + 1, start + 2]
    # The header names the operation, its request id and the call, so it can be re-run.
    assert decode_change_header(records[0].header) == ChangeHeader(
        "mkdir", b"rid-1", [("mkdir", {"parent": 1, "name": b"x"})])
    assert decode_change_header(records[1].header) == ChangeHeader(
        "rename", b"rid-2",
        [("rename", {"parent": 1, "name": b"x", "new_parent": 1, "new_name": b"y"})])
    assert any(k.startswith(b"A") and v is None for k, v in records[1].writes)  # old entry gone


def test_idempotent_replay_of_each_result_kind(runner):
    ino = new_file(runner)
    cases = [("setattr", dict(ino=ino, mask=SetAttrMask.MODE, mode=0o600)),
             ("symlink", dict(parent=1, name=b"s", target=b"/x")),
             ("setxattr", dict(ino=ino, name=b"user.a", value=b"1")),
             ("compact_chunk", dict(ino=ino, index=0))]
    for op, kwargs in cases:
        first = runner.call(op, b"same-" + op.encode(), **kwargs)
        seq = runner.engine.last_seq()
        assert runner.call(op, b"same-" + op.encode(), **kwargs) == first
        assert runner.engine.last_seq() == seq, f"{op} applied twice"


def test_unknown_operation_and_oversized_request_id(runner):
    with pytest.raises(FsError) as e:
        runner.call("format_disk")
    assert e.value.errno == errno.ENOSYS
    with pytest.raises(FsError) as e:
        runner.call("mknod", b"x" * 65, parent=1, name=b"f")
    assert e.value.errno == errno.EINVAL


def test_request_id_reused_for_another_operation_is_refused(runner):
    runner.call("mknod", b"shared-id", parent=1, name=b"f")
    with pytest.raises(FsError) as e:
        runner.call("unlink", b"shared-id", parent=1, name=b"f")
    assert e.value.errno == errno.EINVAL
    assert runner.call("lookup", parent=1, name=b"f").name == b"f"


def test_expired_request_records_are_deleted_and_fresh_ones_kept(runner):
    import time
    runner.call("mknod", b"old-1", parent=1, name=b"a")
    runner.call("mknod", b"old-2", parent=1, name=b"b")
    cutoff = time.time_ns()
    runner.call("mknod", b"new-1", parent=1, name=b"c")
    assert runner.expire_requests(cutoff, page=1) == 2
    # The fresh record still answers a retry; an expired id runs again (and finds EEXIST).
    assert runner.call("mknod", b"new-1", parent=1, name=b"c").name == b"c"
    with pytest.raises(FsError) as e:
        runner.call("mknod", b"old-1", parent=1, name=b"a")
    assert e.value.errno == errno.EEXIST
