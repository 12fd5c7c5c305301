"""Replication's storage side, without gRPC: a node's epoch, lineage and position; what a
node may do when asked to follow a source (stream, bootstrap, roll back, refuse); reading
the change log for a stream; applying records or a snapshot with the position in the same
transaction; fencing and promoting.

Keys under the engine-reserved prefix (the table is in metaserver.schema):

* `\\xffE` -> epoch:8 superseded_by:8: this node's epoch as a primary (1 when absent)
  and the newer epoch that fenced it. Every mutation reads it in its own transaction
  (metaserver.runner), so once a fence commits nothing else does: the log's end is final.
* `\\xffF` -> epoch:8 seq:8 on a follower: the source epoch and the last source change
  record applied. It is written in the same local transaction as the writes of the
  records it counts, so a crash never leaves a record half applied or applied twice.
  Absent: no consistent state yet (first start, or a bootstrap under way), or a primary.
* `\\xffH` epoch:8 -> seq:8, the lineage: the log of that older epoch ended at that
  sequence in this node's history (a promote at position (E, S) adds E -> S; a
  bootstrap copies the source's). A node whose own history in epoch E goes past
  lineage[E] of the node it would follow has records that the new history lacks.

A follower applies whole source records in order; several records may share one local
transaction (apply rate), which still exposes only states the primary had.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from engines import changelog, transactional
from engines.contract import (CHANGELOG_END, ENGINE_RESERVED_PREFIX, Engine, Txn, changelog_key,
                              changelog_seq)
from metaserver import schema
from metaserver.schema import EPOCH_KEY, POSITION_KEY, EpochState

_POSITION = struct.Struct(">QQ")
_SEQ = struct.Struct(">Q")
# Change record headers of the follower's own transactions (its local change log).
APPLY_HEADER = schema.change_header("apply")
BOOTSTRAP_HEADER = schema.change_header("bootstrap")
FENCE_HEADER = schema.change_header("fence")
PROMOTE_HEADER = schema.change_header("promote")
BOOTSTRAP_BATCH_KEYS = 5000


class PositionGone(Exception):
    """The primary no longer holds the record asked for (trimmed): bootstrap again."""


class OutOfOrder(Exception):
    """A record does not follow the applied position: the stream is not this log's."""


@dataclass(frozen=True)
class Position:
    epoch: int
    seq: int


@dataclass(frozen=True)
class LocalState:
    """What a node holds, read in one snapshot."""
    epoch: EpochState
    position: Position | None        # a follower's; None for a primary or a blank node
    lineage: dict[int, int]
    namespace_id: int | None         # None: not formatted (or formatted before ids)
    has_namespace: bool
    last_seq: int

    @property
    def highest_epoch(self) -> int:
        """The newest epoch this node knows of: it never follows an older one."""
        return max(self.epoch.epoch, self.epoch.superseded_by,
                   self.position.epoch if self.position else 0)


@dataclass(frozen=True)
class SourceState:
    """What a node that might be followed says of itself (its Status)."""
    role: str
    epoch: int
    superseded_by: int
    lineage: dict[int, int]
    namespace_id: int | None


class Action(enum.Enum):
    STREAM = "stream"            # continue from the local position
    BOOTSTRAP = "bootstrap"      # replace the namespace: nothing in it is lost
    ROLLBACK = "rollback"        # records past the fork: keep them in a rollback file first
    REFUSE = "refuse"


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: str
    fork: Position | None = None     # where the local history leaves the source's
    diverged: int = 0                # records after the fork (-1: unknown)
    primary_records: bool = field(default=False)   # the local log holds them one by one
    stale_source: bool = False       # refused: the source is a primary of an older epoch


def plan_follow(local: LocalState, source: SourceState) -> Plan:
    """What a node may do to follow `source`; never loses anything silently."""
    if source.role != "primary" and source.role != "fenced":
        return Plan(Action.REFUSE, f"the source is a {source.role}, not a primary")
    source_epoch = source.epoch
    if source_epoch < local.highest_epoch:
        return Plan(Action.REFUSE, f"the source's epoch {source_epoch} is older than this "
                    f"node's {local.highest_epoch}: it is a stale primary", stale_source=True)
    at = local.position
    if at is not None and at.epoch == source_epoch:
        return Plan(Action.STREAM, "following the same epoch")
    if not local.has_namespace:
        return Plan(Action.BOOTSTRAP, "this node holds no namespace")
    if (local.namespace_id is None or source.namespace_id is None
            or local.namespace_id != source.namespace_id):
        return Plan(Action.ROLLBACK, "this node holds a namespace the source's history "
                    "does not include (another namespace, or one formatted without an id)",
                    diverged=-1)
    if at is not None:                 # a follower of an older epoch
        mine, primary_records = at, False
    elif local.epoch.epoch == source_epoch:
        return Plan(Action.REFUSE, f"this node was the primary of epoch {source_epoch} "
                    "itself; the source cannot be of the same epoch")
    else:                              # a former primary: its own log is its epoch's
        mine, primary_records = Position(local.epoch.epoch, local.last_seq), True
    end = source.lineage.get(mine.epoch)
    if end is None:
        return Plan(Action.ROLLBACK, f"epoch {mine.epoch} is not in the source's history",
                    fork=Position(mine.epoch, 0), diverged=-1,
                    primary_records=primary_records)
    fork = Position(mine.epoch, min(end, mine.seq))
    if mine.seq <= end:
        return Plan(Action.BOOTSTRAP, f"this node's history (epoch {mine.epoch} up to "
                    f"{mine.seq}) is part of the source's (it ended at {end})", fork=fork)
    return Plan(Action.ROLLBACK, f"this node holds records {end + 1}..{mine.seq} of epoch "
                f"{mine.epoch}, after the source's history left it at {end}", fork=fork,
                diverged=mine.seq - end, primary_records=primary_records)


# --- reading a node's state -------------------------------------------------------------

def local_state(engine: Engine) -> LocalState:
    last = engine.last_seq()
    with engine.snapshot() as txn:
        epoch, position_raw = txn.get_many([EPOCH_KEY, POSITION_KEY])
        lineage = {int.from_bytes(k[len(schema.HISTORY_PREFIX):], "big"): _SEQ.unpack(v)[0]
                   for k, v in txn.scan(schema.HISTORY_PREFIX, schema.HISTORY_END)}
        ns_id = txn.get(schema.counter_key("namespace"))
        has_namespace = any(True for _ in txn.scan(b"", ENGINE_RESERVED_PREFIX, limit=1))
    return LocalState(schema.decode_epoch(epoch),
                      None if position_raw is None else Position(*_POSITION.unpack(position_raw)),
                      lineage, None if ns_id is None else schema.decode_i64(ns_id),
                      has_namespace, last)


def epoch_state(engine: Engine) -> EpochState:
    with engine.snapshot() as txn:
        return schema.decode_epoch(txn.get(EPOCH_KEY))


def fence(engine: Engine, newer_epoch: int) -> EpochState:
    """Record that `newer_epoch` exists. If it is newer than this primary's epoch, the
    primary is superseded: the commit conflicts with every mutation in flight (they read
    the epoch key) and they all refuse from then on, so last_seq() after this returns is
    the log's final sequence."""
    def write(txn: Txn) -> EpochState:
        state = schema.decode_epoch(txn.get(EPOCH_KEY))
        if newer_epoch <= max(state.epoch, state.superseded_by):
            return state
        state = EpochState(state.epoch, newer_epoch)
        txn.put(EPOCH_KEY, schema.encode_epoch(state))
        return state
    return transactional.run(engine, write, header=FENCE_HEADER).value


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


def finish_bootstrap(engine: Engine, at: Position, lineage: dict[int, int]) -> None:
    """The snapshot is in: store its position and the source's lineage (replacing this
    node's own: its older history is gone with the namespace it replaced)."""
    writes: dict[bytes, bytes | None] = {key: None for key in _lineage_keys(engine)}
    writes.update({schema.history_key(e): _SEQ.pack(s) for e, s in lineage.items()})
    writes[POSITION_KEY] = _POSITION.pack(at.epoch, at.seq)
    writes[EPOCH_KEY] = None             # a follower is no primary of any epoch
    _commit(engine, writes, BOOTSTRAP_HEADER)


def _lineage_keys(engine: Engine) -> list[bytes]:
    with engine.snapshot() as txn:
        return [k for k, _ in txn.scan(schema.HISTORY_PREFIX, schema.HISTORY_END)]


def promote(engine: Engine) -> tuple[int, Position]:
    """Make this follower's engine a primary's: a new epoch above every one it knows,
    no follower position, and the lineage entry saying where the old epoch's log ended
    in this history. Returns (new epoch, the position promoted at). Its change log
    continues from its own sequence."""
    state = local_state(engine)
    at = state.position
    if at is None:
        raise OutOfOrder("this follower has no consistent state to promote")
    epoch = state.highest_epoch + 1
    _commit(engine, {EPOCH_KEY: schema.encode_epoch(EpochState(epoch)), POSITION_KEY: None,
                     schema.history_key(at.epoch): _SEQ.pack(at.seq)}, PROMOTE_HEADER)
    return epoch, at


def _commit(engine: Engine, writes: dict[bytes, bytes | None], header: bytes,
            expect: Position | None = None) -> None:
    """Write `writes` in one transaction. A transaction that finds the position already
    at `expect` writes nothing: an earlier attempt whose commit was unknown applied them
    (apply is exactly once). Without `expect` a retry simply writes again (the writes
    are idempotent puts and deletes)."""
    def write(txn: Txn) -> None:
        if expect is not None and txn.get(POSITION_KEY) == _POSITION.pack(expect.epoch, expect.seq):
            return
        for key, value in writes.items():
            if value is None:
                txn.delete(key)
            else:
                txn.put(key, value)
    transactional.run(engine, write, header=header)
