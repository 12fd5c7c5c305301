"""Housekeeping operations: format the root, reserve id ranges, statfs and its counters,
expire idempotency records."""

from __future__ import annotations

import errno
import random

from metaserver import schema
from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.types import ROOT_INO, Attr, FileType, StatFs

ID_COUNTERS = ("nextInode",)


def init_root(tx: MetaTx, *, mode: int = 0o755) -> None:
    """Format an empty namespace: the root directory and the format marker. Refuses
    (EEXIST) a namespace that holds anything: formatting never overwrites data."""
    if tx.counter("format"):
        raise FsError(errno.EEXIST, "already formatted: formatting never overwrites a namespace")
    key = tx.first_namespace_key()
    if key is not None:
        raise FsError(errno.EEXIST, f"holds keys but no format marker (first key {key[:40]!r}): "
                      "formatting never overwrites data")
    tx.set_counter("format", schema.FORMAT_VERSION)
    tx.set_counter("nextInode", ROOT_INO + 1)
    # The namespace's identity: followers copy it, so a node can tell whether another
    # node's history is its own (metaserver.replication.plan_follow).
    tx.set_counter("namespace", random.getrandbits(63))
    tx.set_counter(schema.STATS_COUNTER, 1)      # directory stats kept from the start
    now = tx.now
    tx.put_attr(Attr(ROOT_INO, FileType.DIRECTORY, mode, 0, 0, now, now, now, 2, 0, 0, ROOT_INO))
    tx.account(0, 1)


def reserve_ids(tx: MetaTx, *, counter: str, count: int) -> int:
    """Take `count` ids from a counter; returns the first."""
    if counter not in ID_COUNTERS or count <= 0:
        raise FsError(errno.EINVAL, f"cannot reserve {count} ids from {counter!r}")
    first = tx.counter(counter)
    tx.set_counter(counter, first + count)
    return first


def statfs(tx: MetaTx, *, total_bytes: int = 1 << 50, total_inodes: int = 1 << 40) -> StatFs:
    pending_bytes, pending_inodes = tx.pending_usage()
    return StatFs(total_bytes, tx.counter("usedBytes") + pending_bytes,
                  total_inodes, tx.counter("usedInodes") + pending_inodes)


def fold_usage(tx: MetaTx, *, writer: int, after: int, before: int,
               limit: int = 10000) -> tuple[int, int]:
    """Fold writer `writer`'s usage deltas numbered after..before-1 (at most `limit`) into
    the counters; returns how many, and the number after the last one folded.

    The range ends below every number the writer had not yet handed out, and starts at
    the previous fold's end: concurrent creates add keys outside it (no conflict), and
    the scan never walks the tombstones of earlier folds."""
    nbytes = inodes = folded = 0
    next_after = after
    for number, b, i in tx.take_deltas(writer, after, before, limit):
        nbytes += b
        inodes += i
        next_after = number + 1
        folded += 1
    if folded:
        for name, delta in (("usedBytes", nbytes), ("usedInodes", inodes)):
            tx.set_counter(name, tx.counter(name) + delta)
    return folded, next_after


def expire_requests(tx: MetaTx, *, keys: list[bytes], older_than_ns: int) -> int:
    """Delete those of the idempotency records `keys` written before `older_than_ns`;
    returns how many. (The runner finds candidates without a transaction: a range read
    here would conflict with every mutation that adds a record inside the range.)"""
    expired = 0
    for key, value in zip(keys, tx.request_records(keys)):
        if value is not None and schema.result_time(value) < older_than_ns:
            tx.del_request_record(key)
            expired += 1
    return expired
