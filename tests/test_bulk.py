"""Bulk build (metaserver.bulk): the namespace it writes is the one the same creates
through the API leave, fsck finds nothing wrong with it, and a server on it goes on
as on any other (fresh inode numbers, right statfs)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest

from engines import open_engine
from metaserver import bulk, dump, schema
from metaserver.client import Client
from metaserver.fsck import fsck
from metaserver.runner import MAX_ATOMIC_OPS, Runner, format_namespace
from metaserver.service.maintenance import Maintenance
from metaserver.testing.metaserver_process import ServerProcess
from metaserver.types import ROOT_INO

FILES, FILES_PER_DIR = 100_000, 10_000
METACTL = os.path.join(os.path.dirname(sys.executable), "metactl")
_TIMES = slice(11, 35)              # atime, mtime, ctime in an encoded attr
# Counters that differ however the namespace was made: its random identity, and how
# far ahead inode numbers were reserved (checked on their own below).
_OWN_COUNTERS = {schema.counter_key("namespace"), schema.counter_key("nextInode")}


def logical_dump(engine) -> dict[bytes, bytes]:
    """The engine's dump, read back, without times and the counters above, and with
    usage deltas not folded yet added to the usage counters (as statfs adds them)."""
    out = io.BytesIO()
    dump.dump(engine, out, compress=False)
    out.seek(0)
    records, pending = {}, [0, 0]
    for key, value in dump.DumpReader(out).records():
        if key in _OWN_COUNTERS:
            continue
        if key[:1] == schema.DELTA_PREFIX:
            pending = [a + b for a, b in zip(pending, schema.decode_delta(value))]
            continue
        if key[:1] == schema.INODE_PREFIX and schema.parse_inode_key(key).tag == schema.ATTR_TAG:
            value = value[:_TIMES.start] + bytes(_TIMES.stop - _TIMES.start) + value[_TIMES.stop:]
        records[key] = value
    for name, more in zip(("usedBytes", "usedInodes"), pending):
        key = schema.counter_key(name)
        records[key] = schema.encode_i64(schema.decode_i64(records.get(key)) + more)
    return records


def run_in_batches(runner: Runner, calls: list[tuple[str, dict]]) -> None:
    for at in range(0, len(calls), MAX_ATOMIC_OPS):
        runner.call_atomic(calls[at:at + MAX_ATOMIC_OPS])


def api_build(url: str, calls: list[tuple[str, dict]]) -> object:
    """A store made by formatting and then running `calls` in order, usage folded (as
    a server's maintenance does)."""
    engine = open_engine(url, create=True)
    format_namespace(engine)
    runner = Runner(engine)
    run_in_batches(runner, calls)
    runner.fold_usage()
    Maintenance(runner, interval_s=1, request_ttl_s=1, changelog_keep=1).fold_tree_deltas()
    return engine


def next_inode(engine) -> int:
    with engine.snapshot() as txn:
        return schema.decode_i64(txn.get(schema.counter_key("nextInode")))


def test_tree_is_the_namespace_the_same_creates_make(tmp_path):
    shape = bulk.TreeShape(FILES, FILES_PER_DIR)
    summary = bulk.build(str(tmp_path / "bulk"), shape, chunk_keys=30_000)
    assert (summary.files, summary.dirs) == (FILES, FILES // FILES_PER_DIR + 1)
    assert summary.sst_files == -(-summary.keys // 30_000)      # memory: a chunk at a time
    calls = [("mkdir", {"parent": ROOT_INO, "name": shape.dir_name(j)}) for j in range(shape.dirs)]
    calls += [("create", {"parent": shape.dir_ino(j), "name": shape.file_name(i)})
              for j in range(shape.dirs) for i in range(shape.files_in(j))]
    made = api_build(f"rocksdb+unsafe-nosync://{tmp_path}/api", calls)
    built = open_engine(f"rocksdb://{tmp_path}/bulk")
    try:
        expected = logical_dump(made)
        # entries, attrs, directory stats, counters (treeStats among them)
        assert len(expected) == 2 * FILES + 3 * shape.dirs + 2 + 4
        assert logical_dump(built) == expected
        assert next_inode(built) == summary.inodes + 1 <= next_inode(made)
    finally:
        made.close()
        built.close()


def test_a_bulk_built_tree_is_clean_and_served_like_any_other(tmp_path):
    shape = bulk.TreeShape(FILES, FILES_PER_DIR)
    summary = bulk.build(str(tmp_path / "db"), shape)
    url = f"rocksdb://{tmp_path}/db"
    checked = subprocess.run([METACTL, "fsck", "--meta-url", url], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{summary.inodes} inodes ({summary.dirs} dirs, {FILES} files): ok" in checked.stdout
    server = ServerProcess(url).start()
    try:
        with Client(server.address) as client:
            existing = client.resolve(b"/" + shape.dir_name(3) + b"/" + shape.file_name(17))
            assert existing.ino == shape.file_ino(3, 17)
            made = client.create(shape.dir_ino(0), "new")
            assert made.ino > summary.inodes          # a fresh number, above every built one
            assert client.statfs().used_inodes == summary.inodes + 1
            page = client.readdir_page(shape.dir_ino(9), b"", 3)
            assert [e.name for e in page.entries] == [shape.file_name(i) for i in range(3)]
            with pytest.raises(FileExistsError):
                client.create(shape.dir_ino(2), shape.file_name(5))
    finally:
        server.stop()
    engine = open_engine(url)
    try:
        assert fsck(engine).ok
    finally:
        engine.close()


LISTING = """d ./src
d ./src/pkg
f ./src/pkg/a.py
f ./src/pkg/b.py
l ./src/latest -> pkg/b.py
d ./src/pkg/sub
p ./src/pkg/sub/fifo
f ./src/README
d ./src/empty
"""


def test_listing_is_the_namespace_the_same_calls_make(tmp_path):
    summary = bulk.build(str(tmp_path / "bulk"),
                         bulk.ListingShape(io.StringIO(LISTING.replace("./src", "/data"))),
                         chunk_keys=3)        # overlapping SST files, ingested one by one
    assert (summary.inodes, summary.dirs, summary.keys, summary.sst_files) == (9, 4, 27, 9)
    calls = [("mkdir", {"parent": 1, "name": b"pkg"}),                        # ino 2
             ("create", {"parent": 2, "name": b"a.py"}),                      # 3
             ("create", {"parent": 2, "name": b"b.py"}),                      # 4
             ("symlink", {"parent": 1, "name": b"latest", "target": b"pkg/b.py"}),  # 5
             ("mkdir", {"parent": 2, "name": b"sub"}),                        # 6
             ("mknod", {"parent": 6, "name": b"fifo", "type": 4}),            # 7
             ("create", {"parent": 1, "name": b"README"}),                    # 8
             ("mkdir", {"parent": 1, "name": b"empty"})]                      # 9
    made = api_build(f"rocksdb+unsafe-nosync://{tmp_path}/api", calls)
    built = open_engine(f"rocksdb://{tmp_path}/bulk")
    try:
        assert logical_dump(built) == logical_dump(made)
        assert fsck(built).ok
    finally:
        made.close()
        built.close()


@pytest.mark.parametrize("listing, complaint", [
    ("d .\nf ./a/b\n", "'./a' is not a directory listed before it"),
    ("f ./a\n", "the first line must be the root directory"),
    ("d .\nl ./x\n", "a symlink needs ' -> TARGET'"),
    ("d .\nz ./x\n", "expected 'TYPE PATH'"),
    ("d .\nd ./a\nd ./a\n", "listed twice"),
    ("d .\nf ./a\nf ./a\n", "generated twice"),
    ("", "the listing is empty"),
])
def test_a_bad_listing_is_refused_with_its_line(tmp_path, listing, complaint):
    with pytest.raises(bulk.BulkError, match=re.escape(complaint)):
        bulk.build(str(tmp_path / "db"), bulk.ListingShape(io.StringIO(listing)))


def test_a_store_that_exists_is_never_built_over(tmp_path):
    bulk.build(str(tmp_path / "db"), bulk.TreeShape(10, 5))
    with pytest.raises(bulk.BulkError, match="already holds a RocksDB store"):
        bulk.build(str(tmp_path / "db"), bulk.TreeShape(10, 5))
    engine = open_engine(f"rocksdb://{tmp_path}/db")
    try:
        assert fsck(engine).inodes == 1 + 2 + 10
    finally:
        engine.close()


def test_the_command_builds_from_a_find_listing_and_refuses_a_second_build(tmp_path):
    listing = tmp_path / "listing.txt"
    with open(listing, "w") as out:          # find's own output, of a real directory
        subprocess.run(["find", os.path.dirname(bulk.__file__), "-printf", "%y %p -> %l\\n"],
                       stdout=out, check=True)
    lines = sum(1 for _ in open(listing))
    url = f"rocksdb://{tmp_path}/db"
    command = [sys.executable, "-m", "metaserver.cli.bulk", "--meta-url", url]
    done = subprocess.run(command + ["--listing", str(listing)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("built "), done.stderr
    engine = open_engine(url)
    try:
        assert fsck(engine).inodes == lines
    finally:
        engine.close()
    again = subprocess.run(command + ["--files", "10"], capture_output=True, text=True)
    assert again.returncode == 1
    assert again.stderr == f"bulk build: {tmp_path}/db already holds a RocksDB store: a bulk " \
                           "build makes a new one\n"


def test_metabench_scale_bulk_measures_a_step(tmp_path):
    metabench = os.path.join(os.path.dirname(sys.executable), "metabench")
    out = tmp_path / "scale.json"
    done = subprocess.run([metabench, "scale", "--bulk", "--steps", "2e3", "--files-per-dir",
                           "1000", "--seconds", "0.5", "--sample", "200", "--dump-seconds",
                           "60", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.load(open(out))["steps"]
    assert row["files"] == 2000 and row["dirs"] == 2 and row["fsck"]["ok"]
    assert row["dump"]["ok"] and row["restart_seconds"] > 0
    assert all(phase["items"] > 0 for phase in row["phases"].values())
