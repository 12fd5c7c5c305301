"""Bulk build: a new RocksDB namespace of many files, written without transactions.

How a large namespace is migrated in (JuiceFS's `load`), and how benchmarks get 1e8
files in minutes instead of days. A shape (`TreeShape`: mdtest-like directories of
files; `ListingShape`: a `find -printf '%y %p\\n'` listing) yields the namespace's keys
and values, encoded by metaserver.schema; they are sorted a chunk at a time, written to
SST files (rocksdict's SstFileWriter, with the engine's own options) and ingested.
Then come the counters a server would have after creating the same files one by one:
`format`, `namespace`, `nextInode` above every inode, `usedInodes` and `usedBytes` with
nothing left to fold, and each directory's stats (ops/quota.py). No change record is
written: the change log starts empty, as after `metaserver format`, and a follower of
this store bootstraps from a snapshot (it holds no namespace). So the result is what
the same creates through the API would leave, times aside (every inode gets the build's
time).

Inode numbers follow creation order: in a tree, the root, the directories in name order,
then each directory's files in name order, which is the order a single client creating
the tree one by one gets them (tests/test_bulk.py compares the two).

Memory: a tree is generated in key order and a chunk of CHUNK_KEYS pairs is held at a
time, with one directory's file names (made once, shared by every directory); a listing also keeps one small record per directory (its path and subdirectory
count), and its chunks overlap (each is ingested on its own; RocksDB compacts them).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rocksdict import IngestExternalFileOptions, Rdict, SstFileWriter

from engines.rocksdb import store_options
from metaserver import schema
from metaserver.types import NAME_MAX, ROOT_INO, Attr, FileType, Summary

CHUNK_KEYS = 500_000
FILE_MODE, DIR_MODE, SYMLINK_MODE = 0o644, 0o755, 0o777
# find's %y letters
_FIND_TYPES = {"d": FileType.DIRECTORY, "f": FileType.REGULAR, "l": FileType.SYMLINK,
               "p": FileType.FIFO, "s": FileType.SOCKET, "c": FileType.CHAR_DEVICE,
               "b": FileType.BLOCK_DEVICE}


class BulkError(Exception):
    """The target is not a new store, or the shape cannot be built; nothing usable was
    made (remove the target directory)."""


@dataclass(frozen=True)
class BuildSummary:
    inodes: int         # the root included
    dirs: int
    keys: int
    sst_files: int
    seconds: float

    @property
    def files(self) -> int:
        """Inodes that are not directories."""
        return self.inodes - self.dirs

    def __str__(self) -> str:
        return (f"built {self.files:,} files in {self.dirs:,} directories ({self.keys:,} keys, "
                f"{self.sst_files} SST files) in {self.seconds:.1f} s "
                f"({self.files / max(self.seconds, 1e-9):,.0f} files/s)")


def _attr(type_: FileType, mode: int, now: int, parent: int, nlink: int = 1,
          size: int = 0) -> bytes:
    return schema.encode_attr(Attr(0, type_, mode, 0, 0, now, now, now, nlink, size, 0, parent))


class _Tally:
    """What a shape generated, for the counters."""

    def __init__(self) -> None:
        self.inodes = self.dirs = self.max_ino = 0


class TreeShape:
    """`files` regular files in directories of `files_per_dir` under the root (the last
    one may hold fewer): /dir.J/file.I, both numbers zero-padded so that name order is
    number order, as mdtest's unique-directory layout without its tree depth."""

    def __init__(self, files: int, files_per_dir: int) -> None:
        if files < 0 or files_per_dir < 1:
            raise BulkError("a tree needs files >= 0 and files_per_dir >= 1")
        self.files, self.files_per_dir = files, files_per_dir
        self.dirs = -(-files // files_per_dir)
        self._dir_width = len(str(max(self.dirs - 1, 0)))
        self._file_width = len(str(files_per_dir - 1))

    def dir_name(self, j: int) -> bytes:
        return b"dir.%0*d" % (self._dir_width, j)

    def file_name(self, i: int) -> bytes:
        return b"file.%0*d" % (self._file_width, i)

    def dir_ino(self, j: int) -> int:
        return ROOT_INO + 1 + j

    def files_in(self, j: int) -> int:
        return min(self.files_per_dir, self.files - j * self.files_per_dir)

    def file_ino(self, j: int, i: int) -> int:
        return ROOT_INO + 1 + self.dirs + j * self.files_per_dir + i

    def pairs(self, now: int, tally: _Tally) -> Iterator[tuple[bytes, bytes]]:
        """Every key of the tree, in key order: an inode's entries (`D`) sort before its
        attr (`I`), and every file's number is above every directory's."""
        dir_entry = schema.encode_dentry
        for j in range(self.dirs):
            yield schema.dentry_key(ROOT_INO, self.dir_name(j)), dir_entry(
                FileType.DIRECTORY, self.dir_ino(j))
        yield schema.attr_key(ROOT_INO), _attr(FileType.DIRECTORY, DIR_MODE, now, ROOT_INO,
                                               nlink=2 + self.dirs)
        if self.dirs:
            yield schema.tree_key(ROOT_INO), schema.encode_tree(Summary(dirs=self.dirs))
        dir_attr = _attr(FileType.DIRECTORY, DIR_MODE, now, ROOT_INO, nlink=2)
        names = [self.file_name(i) for i in range(min(self.files_per_dir, self.files))]
        for j in range(self.dirs):
            ino, first = self.dir_ino(j), self.file_ino(j, 0)
            prefix = schema.dentry_key(ino, b"")
            for i in range(self.files_in(j)):
                yield prefix + names[i], dir_entry(FileType.REGULAR, first + i)
            yield schema.attr_key(ino), dir_attr
            if self.files_in(j):
                yield schema.tree_key(ino), schema.encode_tree(Summary(files=self.files_in(j)))
        for j in range(self.dirs):
            value, first = _attr(FileType.REGULAR, FILE_MODE, now, self.dir_ino(j)), \
                self.file_ino(j, 0)
            for ino in range(first, first + self.files_in(j)):
                yield schema.attr_key(ino), value
        tally.inodes, tally.dirs = 1 + self.dirs + self.files, 1 + self.dirs
        tally.max_ino = ROOT_INO + self.dirs + self.files


class ListingShape:
    """The tree a listing describes, one `TYPE PATH` line per inode (`find DIR -printf
    '%y %p\\n'`: TYPE is find's %y letter; a symlink's line may end in ` -> TARGET`, as
    `-printf '%y %p -> %l\\n'` writes for every line). The first line is the root; a
    directory comes before what it holds (find's default order). Inodes are numbered in
    listing order; sizes, modes and owners are not in a listing: files are empty, 0644,
    root's."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines

    def pairs(self, now: int, tally: _Tally) -> Iterator[tuple[bytes, bytes]]:
        dirs: dict[str, int] = {}            # path -> inode
        subdirs: dict[int, int] = {}         # inode -> subdirectories
        others: dict[int, int] = {}          # inode -> entries of other types
        parents: dict[int, int] = {}         # directory inode -> its parent
        ino = ROOT_INO - 1
        for number, line in enumerate(self.lines, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            type_, path, target = _parse_line(number, line)
            path = path.rstrip("/") or "/"
            ino += 1
            if ino == ROOT_INO:
                if type_ != FileType.DIRECTORY:
                    raise BulkError(f"line {number}: the first line must be the root directory")
                dirs[path], subdirs[ROOT_INO], parents[ROOT_INO] = ROOT_INO, 0, ROOT_INO
                continue
            parent_path, _, name = path.rpartition("/")
            parent = dirs.get(parent_path or "/")
            if parent is None:
                raise BulkError(f"line {number}: {parent_path!r} is not a directory listed "
                                "before it")
            name_bytes = name.encode("utf-8", "surrogateescape")
            if not name_bytes or len(name_bytes) > NAME_MAX or name in (".", ".."):
                raise BulkError(f"line {number}: {name!r} is not a valid name")
            yield schema.dentry_key(parent, name_bytes), schema.encode_dentry(type_, ino)
            if type_ == FileType.DIRECTORY:
                if path in dirs:
                    raise BulkError(f"line {number}: directory {path!r} is listed twice")
                dirs[path], subdirs[ino], parents[ino] = ino, 0, parent
                subdirs[parent] += 1
                continue
            others[parent] = others.get(parent, 0) + 1
            if type_ == FileType.SYMLINK:
                yield schema.attr_key(ino), _attr(type_, SYMLINK_MODE, now, parent,
                                                  size=len(target))
                yield schema.symlink_key(ino), target
            else:
                yield schema.attr_key(ino), _attr(type_, FILE_MODE, now, parent)
        if ino < ROOT_INO:
            raise BulkError("the listing is empty")
        for dir_ino, count in subdirs.items():
            yield schema.attr_key(dir_ino), _attr(FileType.DIRECTORY, DIR_MODE, now,
                                                  parents[dir_ino], nlink=2 + count)
            if count or dir_ino in others:        # an empty directory has no stats key
                yield schema.tree_key(dir_ino), schema.encode_tree(
                    Summary(count, others.get(dir_ino, 0), 0))
        tally.inodes, tally.dirs, tally.max_ino = ino, len(subdirs), ino


def _parse_line(number: int, line: str) -> tuple[FileType, str, bytes]:
    letter, _, rest = line.partition(" ")
    type_ = _FIND_TYPES.get(letter)
    if type_ is None or not rest:
        raise BulkError(f"line {number}: expected 'TYPE PATH' with TYPE one of "
                        f"{''.join(_FIND_TYPES)}, got {line[:80]!r}")
    path, arrow, target = rest.partition(" -> ")
    if type_ == FileType.SYMLINK and not (arrow and target):
        raise BulkError(f"line {number}: a symlink needs ' -> TARGET' "
                        "(find -printf '%y %p -> %l\\n')")
    return type_, path, target.encode("utf-8", "surrogateescape")


def _counters(tally: _Tally) -> Iterator[tuple[bytes, bytes]]:
    values = {"format": schema.FORMAT_VERSION, "namespace": random.getrandbits(63),
              "nextInode": tally.max_ino + 1, "usedBytes": 0, "usedInodes": tally.inodes,
              schema.STATS_COUNTER: 1}
    for name in sorted(values):
        yield schema.counter_key(name), schema.encode_i64(values[name])


class _SstSink:
    """Sorts pairs a chunk at a time into SST files and ingests each into the store."""

    def __init__(self, path: str, chunk_keys: int) -> None:
        self.path, self.chunk_keys = path, chunk_keys
        self.keys = self.sst_files = 0
        self._options = store_options(create=True)
        self._db = Rdict(path, options=self._options)
        self._ingest = IngestExternalFileOptions()
        self._ingest.set_move_files(True)
        self._chunk: list[tuple[bytes, bytes]] = []

    def add(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        for pair in pairs:
            self._chunk.append(pair)
            if len(self._chunk) >= self.chunk_keys:
                self.flush()

    def flush(self) -> None:
        if not self._chunk:
            return
        self._chunk.sort()
        sst = os.path.join(self.path, f"bulk-{self.sst_files:06d}.sst.tmp")
        writer = SstFileWriter(options=self._options)
        writer.open(sst)
        previous = None
        for key, value in self._chunk:
            if key == previous:
                raise BulkError(f"key {key[:40]!r} generated twice (a path listed twice?)")
            writer[key] = value
            previous = key
        writer.finish()
        self._db.ingest_external_file([sst], self._ingest)
        self.keys += len(self._chunk)
        self.sst_files += 1
        self._chunk.clear()

    def close(self) -> None:
        self._db.close()


def build(path: str, shape: TreeShape | ListingShape, *, now_ns: int | None = None,
          chunk_keys: int = CHUNK_KEYS) -> BuildSummary:
    """Build a new RocksDB namespace at `path` (a directory with no store in it yet),
    sorting `chunk_keys` pairs at a time into each SST file."""
    if os.path.exists(os.path.join(path, "CURRENT")):
        raise BulkError(f"{path} already holds a RocksDB store: a bulk build makes a new one")
    started = time.monotonic()
    now = time.time_ns() if now_ns is None else now_ns
    os.makedirs(path, exist_ok=True)
    sink, tally = _SstSink(path, chunk_keys), _Tally()
    try:
        sink.add(shape.pairs(now, tally))
        sink.add(_counters(tally))
        sink.flush()
    finally:
        sink.close()
    return BuildSummary(tally.inodes, tally.dirs, sink.keys, sink.sst_files,
                        time.monotonic() - started)
