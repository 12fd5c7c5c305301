"""Replication's storage side, without gRPC: read the change log for a stream, and apply
records or a snapshot to a follower's engine with its position in the same transaction.

Keys under the engine-reserved prefix (see metaserver.schema):

* `\\xffE` -> epoch:8, fenced:1 on a primary: its epoch (1 when absent); fenced once a
  follower of a newer epoch has shown it that another node was promoted.
* `\\xffF` -> epoch:8, seq:8 on a follower: the source epoch and the last source change
  record applied. It is written in the same local transaction as the writes of the
  records it counts, so a crash never leaves a record half applied or applied twice.
  Absent: no consistent state yet (first start, or a bootstrap under way).

A follower applies whole source records in order; several records may share one local
transaction (apply rate), which still exposes only states the primary had.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engines import changelog
from engines.contract import (CHANGELOG_END, ENGINE_RESERVED_PREFIX, CommitUnknown, Engine,
                              TxnConflict, changelog_key, changelog_seq)
from metaserver import schema

EPOCH_KEY = ENGINE_RESERVED_PREFIX + b"E"
POSITION_KEY = ENGINE_RESERVED_PREFIX + b"F"
_EPOCH = struct.Struct(">QB")
_POSITION = struct.Struct(">QQ")
# Change record headers of the follower's own transactions (its local change log).
APPLY_HEADER = schema.change_header("apply")
BOOTSTRAP_HEADER = schema.change_header("bootstrap")
BOOTSTRAP_BATCH_KEYS = 5000
_ATTEMPTS = 20


class PositionGone(Exception):
    """The primary no longer holds the record asked for (trimmed): bootstrap again."""


class OutOfOrder(Exception):
    """A record does not follow the applied position: the stream is not this log's."""


@dataclass(frozen=True)
class Position:
    epoch: int
    seq: int


# --- primary side --------------------------------------------------------------------------

def epoch_of(engine: Engine) -> tuple[int, bool]:
    """(epoch, fenced) of this node as a primary."""
    with engine.snapshot() as txn:
        value = txn.get(EPOCH_KEY)
    if value is None:
        return 1, False
    epoch, fenced = _EPOCH.unpack(value)
    return epoch, bool(fenced)


def set_epoch(engine: Engine, epoch: int, fenced: bool = False) -> None:
    _commit(engine, {EPOCH_KEY: _EPOCH.pack(epoch, fenced)}, b"\x05epoch")


def read_changes(engine: Engine, first: int, max_records: int,
                 max_bytes: int) -> list[bytes]:
    """Encoded change records first, first+1, ... (at most max_records / about max_bytes),
    all from one snapshot; [] when `first` is not committed yet. PositionGone when
    record `first` was trimmed."""
    newest = engine.last_seq()    # before the scan: a record it counts is visible to it
    with engine.snapshot() as txn:
        records, size = [], 0
        for key, value in txn.scan(changelog_key(first), CHANGELOG_END, limit=max_records):
            if changelog_seq(key) != first + len(records):
                break
            records.append(value)
            size += len(value)
            if size >= max_bytes:
                break
    if not records and first <= newest:
        raise PositionGone(f"change record {first} was trimmed")
    return records


def snapshot(engine: Engine) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
    """The namespace keyspace at one point and the change sequence it is consistent with."""
    return engine.snapshot_scan(b"", ENGINE_RESERVED_PREFIX)


# --- follower side -------------------------------------------------------------------------

def position(engine: Engine) -> Position | None:
    with engine.snapshot() as txn:
        value = txn.get(POSITION_KEY)
    return None if value is None else Position(*_POSITION.unpack(value))


def apply_records(engine: Engine, at: Position, records: Iterable[bytes]) -> Position:
    """Apply whole records following `at` in one local transaction that also stores the
    new position; returns it. Raises OutOfOrder for a record that does not follow."""
    writes: dict[bytes, bytes | None] = {}
    seq = at.seq
    for data in records:
        record = changelog.decode(data)
        if record.seq != seq + 1:
            raise OutOfOrder(f"record {record.seq} does not follow applied position {seq}")
        seq = record.seq
        for key, value in record.writes:
            if not key.startswith(ENGINE_RESERVED_PREFIX):   # the source's own bookkeeping
                writes[key] = value
    new = Position(at.epoch, seq)
    if seq == at.seq:
        return at
    writes[POSITION_KEY] = _POSITION.pack(new.epoch, new.seq)
    _commit(engine, writes, APPLY_HEADER, expect=new)
    return new


def clear_position(engine: Engine) -> None:
    """Start of a bootstrap: from here until finish_bootstrap there is no consistent state."""
    _commit(engine, {POSITION_KEY: None}, BOOTSTRAP_HEADER)


def wipe_namespace(engine: Engine) -> int:
    """Delete every namespace key (before a bootstrap over old state); returns how many."""
    total = 0
    while True:
        with engine.snapshot() as txn:
            keys = [k for k, _ in txn.scan(b"", ENGINE_RESERVED_PREFIX,
                                           limit=BOOTSTRAP_BATCH_KEYS)]
        if not keys:
            return total
        _commit(engine, dict.fromkeys(keys), BOOTSTRAP_HEADER)
        total += len(keys)


def load_pairs(engine: Engine, pairs: Iterable[tuple[bytes, bytes]]) -> int:
    """Write snapshot pairs, BOOTSTRAP_BATCH_KEYS per transaction; returns how many."""
    batch: dict[bytes, bytes | None] = {}
    total = 0
    for key, value in pairs:
        batch[key] = value
        if len(batch) >= BOOTSTRAP_BATCH_KEYS:
            _commit(engine, batch, BOOTSTRAP_HEADER)
            total += len(batch)
            batch = {}
    if batch:
        _commit(engine, batch, BOOTSTRAP_HEADER)
        total += len(batch)
    return total


def finish_bootstrap(engine: Engine, at: Position) -> None:
    _commit(engine, {POSITION_KEY: _POSITION.pack(at.epoch, at.seq)}, BOOTSTRAP_HEADER)


def promote(engine: Engine) -> int:
    """Make this follower's engine a primary's: epoch + 1, no follower position; returns
    the new epoch. Its change log continues from its own sequence."""
    at = position(engine)
    if at is None:
        raise OutOfOrder("this follower has no consistent state to promote")
    epoch = max(at.epoch, epoch_of(engine)[0]) + 1
    _commit(engine, {EPOCH_KEY: _EPOCH.pack(epoch, False), POSITION_KEY: None}, b"\x07promote")
    return epoch


def _commit(engine: Engine, writes: dict[bytes, bytes | None], header: bytes,
            expect: Position | None = None) -> None:
    """Write `writes` in one transaction. A conflict retries; an unknown commit is settled
    by the stored position when there is one to compare (apply is exactly once), and is
    otherwise retried (the other writes are idempotent puts and deletes)."""
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as txn:
                for key, value in writes.items():
                    if value is None:
                        txn.delete(key)
                    else:
                        txn.put(key, value)
                txn.commit(header)
            return
        except TxnConflict:
            if attempt == _ATTEMPTS - 1:
                raise
        except CommitUnknown:
            if expect is not None and position(engine) == expect:
                return
            if attempt == _ATTEMPTS - 1:
                raise
