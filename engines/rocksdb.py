"""Embedded RocksDB engine (rocksdict): the default. OCC over atomic write batches.

rocksdict offers no transactions, and its snapshot iterators do not honour the
snapshot, so isolation comes from engines.occ: each scan uses one iterator (itself a
consistent view) and commit-time validation covers the rest. Durability: batches are
written with the WAL on and the WAL is fsynced by group commit before a commit is
acknowledged. `rocksdb+unsafe-nosync://` skips the fsync (benchmarks only: a crash
can lose acknowledged writes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from rocksdict import (BlockBasedIndexType, BlockBasedOptions, Cache, Options, Rdict,
                       ReadOptions, WriteBatch, WriteOptions)

from engines import NotFormatted
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX, EngineUnavailable, changelog_seq
from engines.occ import OccEngine


# Tuning for 1e7+ entries (bench/RESULTS.md, "Bulk build and scale"). A create first
# checks that its name is absent: the bloom filter answers most such misses without a
# data block read. Index and filter blocks live in the block cache, so the server's
# memory is bounded by the cache, not by the number of files (filters take 10 bits per
# key). They are partitioned (4 KiB pieces under a small pinned top level): whole-file
# filters of 1e8 files (250 MB) thrash a 256 MiB cache, and random gets ran 3-5x
# slower. METASERVER_ROCKSDB_CACHE_MIB sets the cache size.
BLOOM_BITS_PER_KEY = 10
BLOCK_CACHE_BYTES = int(os.environ.get("METASERVER_ROCKSDB_CACHE_MIB", "256")) << 20
WRITE_BUFFER_BYTES = 64 << 20


def store_options(create: bool = False) -> Options:
    """The options every store (and every SST file written for it) is opened with."""
    table = BlockBasedOptions()
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    table.set_index_type(BlockBasedIndexType.two_level_index_search())
    table.set_partition_filters(True)
    table.set_metadata_block_size(4096)
    table.set_pin_top_level_index_and_filter(True)
    options = Options(raw_mode=True)
    options.create_if_missing(create)
    options.set_block_based_table_factory(table)
    options.set_level_compaction_dynamic_level_bytes(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_background_jobs(2)
    return options


def _lock_holder(path: str) -> str:
    """` (pid N)` of the process holding the store's LOCK file, as /proc/locks says
    (Linux); empty when that cannot be told."""
    try:
        st = os.stat(os.path.join(path, "LOCK"))
        file = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii") as locks:
            for line in locks:      # 1: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END
                fields = line.split()
                if len(fields) > 5 and fields[5] == file:
                    return f" (pid {fields[4]})"
    except OSError:
        pass
    return ""


class RocksEngine(OccEngine):
    def __init__(self, url: str, path: str, sync: bool = True, create: bool = False) -> None:
        # A missing store is an error unless asked to create one: a typo in a path must
        # not quietly start an empty namespace. CURRENT is the file every RocksDB has.
        if not create and not os.path.isfile(os.path.join(path, "CURRENT")):
            raise NotFormatted(url)
        super().__init__(url)
        self.path = path
        self._fsync = sync
        if create:
            os.makedirs(path, exist_ok=True)
        try:
            self._db = Rdict(path, options=store_options(create))
        except Exception as exc:
            if "LOCK" in str(exc):      # RocksDB admits one process per store
                raise EngineUnavailable(f"data dir {path} in use by another process"
                                        f"{_lock_holder(path)}") from exc
            raise EngineUnavailable(f"cannot open RocksDB at {path}: {exc}") from exc
        self._write_options = WriteOptions()
        self._start(self._newest_change_seq())

    def _newest_change_seq(self) -> int:
        for key, _ in self._scan(CHANGELOG_PREFIX, CHANGELOG_END, reverse=True):
            return changelog_seq(key)
        return 0

    def _get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        # One get per key: rocksdict's multi-get lets go of the GIL, and a server thread
        # then queues to take it back behind the others (15% of server samples).
        get = self._db.get
        return [get(key) for key in keys]

    def _scan(self, start: bytes, end: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        yield from self._scan_pinned(start, end, reverse)

    def _scan_pinned(self, start: bytes, end: bytes,
                     reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        # A RocksDB iterator reads the store as it was when the iterator was made: it
        # is made here, eagerly, so the caller decides that moment.
        options = ReadOptions()
        if not reverse:
            options.set_iterate_upper_bound(end)
        it = self._db.iter(options)
        if reverse:
            it.seek_for_prev(end)
            if it.valid() and it.key() >= end:
                it.prev()
        else:
            it.seek(start)
        return _walk(it, start, reverse)

    def _apply(self, writes: dict[bytes, bytes | None]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        try:
            self._db.write(batch, self._write_options)
        except Exception as exc:
            raise EngineUnavailable(f"{self.url}: write failed: {exc}") from exc

    def _delete_range(self, start: bytes, end: bytes) -> None:
        self._db.delete_range(start, end)

    def _sync(self) -> None:
        if self._fsync:
            self._db.flush_wal(True)

    def disk_usage(self) -> int:
        return sum(entry.stat().st_size for entry in os.scandir(self.path) if entry.is_file())

    def close(self) -> None:
        with self._commit_lock:
            self._sync()
            self._db.close()


def _walk(it, start: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    if reverse:
        while it.valid() and it.key() >= start:
            yield it.key(), it.value()
            it.prev()
    else:
        while it.valid():
            yield it.key(), it.value()
            it.next()
