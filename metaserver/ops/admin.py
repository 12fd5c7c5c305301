"""Housekeeping operations: format the root, reserve id ranges, statfs and its counters,
expire idempotency records."""

from __future__ import annotations

import errno
import random

from engines.contract import ENGINE_RESERVED_PREFIX
from metaserver import schema
from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.types import ROOT_INO, Attr, FileType, StatFs

ID_COUNTERS = ("nextInode",)


def init_root(tx: MetaTx, *, mode: int = 0o755) -> None:
    """Format an empty namespace: the root directory and the format marker. Refuses
    (EEXIST) a namespace that holds anything: formatting never overwrites data."""
    if tx.txn.get(schema.counter_key("format")) is not None:
        raise FsError(errno.EEXIST, "already formatted: formatting never overwrites a namespace")
    for key, _ in tx.txn.scan(b"", ENGINE_RESERVED_PREFIX, limit=1):
        raise FsError(errno.EEXIST, f"holds keys but no format marker (first key {key[:40]!r}): "
                      "formatting never overwrites data")
    tx.txn.put(schema.counter_key("format"), schema.encode_i64(schema.FORMAT_VERSION))
    tx.txn.put(schema.counter_key("nextInode"), schema.encode_i64(ROOT_INO + 1))
    # The namespace's identity: followers copy it, so a node can tell whether another
    # node's history is its own (metaserver.replication.plan_follow).
    tx.txn.put(schema.counter_key("namespace"), schema.encode_i64(random.getrandbits(63)))
    now = tx.now
    tx.put_attr(Attr(ROOT_INO, FileType.DIRECTORY, mode, 0, 0, now, now, now, 2, 0, 0, ROOT_INO))
    tx.account(0, 1)


def reserve_ids(tx: MetaTx, *, counter: str, count: int) -> int:
    """Take `count` ids from a counter; returns the first."""
    if counter not in ID_COUNTERS or count <= 0:
        raise FsError(errno.EINVAL, f"cannot reserve {count} ids from {counter!r}")
    key = schema.counter_key(counter)
    first = schema.decode_i64(tx.txn.get(key))
    tx.txn.put(key, schema.encode_i64(first + count))
    return first


def statfs(tx: MetaTx, *, total_bytes: int = 1 << 50, total_inodes: int = 1 << 40) -> StatFs:
    used_bytes = schema.decode_i64(tx.txn.get(schema.counter_key("usedBytes")))
    used_inodes = schema.decode_i64(tx.txn.get(schema.counter_key("usedInodes")))
    for _, value in tx.txn.scan(schema.DELTA_PREFIX, schema.DELTA_END):
        nbytes, inodes = schema.decode_delta(value)
        used_bytes += nbytes
        used_inodes += inodes
    return StatFs(total_bytes, used_bytes, total_inodes, used_inodes)


def fold_usage(tx: MetaTx, *, writer: int, after: int, before: int,
               limit: int = 10000) -> tuple[int, int]:
    """Fold writer `writer`'s usage deltas numbered after..before-1 (at most `limit`) into
    the counters; returns how many, and the number after the last one folded.

    The range ends below every number the writer had not yet handed out, and starts at
    the previous fold's end: concurrent creates add keys outside it (no conflict), and
    the scan never walks the tombstones of earlier folds."""
    nbytes = inodes = folded = 0
    next_after = after
    for key, value in tx.txn.scan(schema.delta_key(writer, after), schema.delta_key(writer, before),
                                  limit=limit):
        b, i = schema.decode_delta(value)
        nbytes += b
        inodes += i
        next_after = schema.delta_number(key) + 1
        folded += 1
        tx.txn.delete(key)
    if folded:
        for name, delta in (("usedBytes", nbytes), ("usedInodes", inodes)):
            key = schema.counter_key(name)
            tx.txn.put(key, schema.encode_i64(schema.decode_i64(tx.txn.get(key)) + delta))
    return folded, next_after


def expire_requests(tx: MetaTx, *, keys: list[bytes], older_than_ns: int) -> int:
    """Delete those of the idempotency records `keys` written before `older_than_ns`;
    returns how many. (The runner finds candidates without a transaction: a range read
    here would conflict with every mutation that adds a record inside the range.)"""
    expired = 0
    for key, value in zip(keys, tx.txn.get_many(keys)):
        if value is not None and schema.result_time(value) < older_than_ns:
            tx.txn.delete(key)
            expired += 1
    return expired
