"""Serializable transactions for stores that have only atomic batches (RocksDB, memory).

Optimistic concurrency control with backward validation (Kung & Robinson):

* A transaction reads the live committed store and buffers its writes. It records the
  version it started at, every key it read, and every key range its scans covered
  (only up to the last key actually returned, so a paged listing does not claim the
  rest of a directory).
* Commit takes the engine's commit lock, checks the write sets of every transaction
  that committed after our start: if one wrote a key we read or a key inside a range we
  scanned, we abort with TxnConflict (the runner retries). Otherwise the writes, plus the
  change record under the next sequence, go to the store as one atomic batch.
* Read-only transactions validate the same way, so a multi-read operation (lookup =
  dentry + attr) never returns a mix of two states.

This is serializable: every committed transaction behaves as if it ran alone at its
commit point, because nothing it read changed between its reads and that point.

Durability uses group commit: the batch is applied unsynced under the lock (cheap),
then the committer waits until some thread has synced the log past its version; one
sync covers every batch written before it. Readers likewise wait until what they saw
is durable, so nobody observes a write that a crash could still take back.

Transactions of these in-process stores take turns (`Turns`): their reads and writes
hold the GIL from start to commit, so running them at once gains nothing, and threads
that meet on the engine's locks while Python switches between them every 5 ms hand
the GIL around in convoys (4 threads made 5.2k creates/s where 1 made 16k).
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Protocol

from engines import changelog
from engines.contract import (
    CHANGELOG_END,
    CHANGELOG_PREFIX,
    ENGINE_RESERVED_PREFIX,
    CommitUnknown,
    Engine,
    EngineError,
    EngineUnavailable,
    ReadOnlyTxn,
    Txn,
    TxnConflict,
    changelog_key,
)

# How long a transaction waits for its turn before it runs beside the one holding it
# (correct either way: validation decides). Bounds the stall behind a long one.
TURN_WAIT_S = 0.1

# Drivers over a store shared by several processes (SQL, TiKV) keep the newest commit
# sequence under this key (8 bytes, big-endian); locking it serializes their commits.
SEQ_KEY = ENGINE_RESERVED_PREFIX + b"S"


class OccEngine(Engine):
    """Shared OCC machinery; a driver supplies only the store primitives below."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._commit_lock = threading.Lock()
        self._committed = threading.Condition(self._commit_lock)   # _version moved
        self._version = 0            # newest applied (visible) version == change seq
        self._history: deque[tuple[int, frozenset[bytes]]] = deque()
        self._active: Counter[int] = Counter()
        self._durable_cond = threading.Condition()
        self._durable = 0
        self._syncing = False
        self._turns = Turns()

    def _start(self, version: int) -> None:
        self._version = self._durable = version

    # --- store primitives a driver implements -----------------------------------------
    @abc.abstractmethod
    def _get(self, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    @abc.abstractmethod
    def _scan(self, start: bytes, end: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]: ...

    @abc.abstractmethod
    def _apply(self, writes: dict[bytes, bytes | None]) -> None:
        """Apply atomically and make visible; durability comes from _sync.

        On failure nothing may be applied, and EngineUnavailable is raised."""

    @abc.abstractmethod
    def _sync(self) -> None:
        """Make everything applied so far durable."""

    @abc.abstractmethod
    def _delete_range(self, start: bytes, end: bytes) -> None: ...

    # --- Engine -------------------------------------------------------------------------
    def begin(self) -> Txn:
        return self._open(read_only=False)

    def snapshot(self) -> Txn:
        return self._open(read_only=True)

    def last_seq(self) -> int:
        return self._version

    def turn(self) -> contextlib.AbstractContextManager:
        return self._turns.take()

    def wait_for_commit(self, after_seq: int, timeout: float) -> int:
        """Every commit passes through this process: sleep until one comes."""
        with self._committed:
            self._committed.wait_for(lambda: self._version > after_seq, timeout)
            return self._version

    def active_transactions(self) -> int:
        with self._commit_lock:
            return sum(self._active.values())

    def wait_durable(self) -> None:
        self._wait_durable(self._version)

    def trim_changes(self, keep: int) -> int:
        with self._commit_lock:
            upto = self._version - keep
            first = self._first_change_seq()
            if first is None or upto < first:
                return 0
            self._delete_range(changelog_key(first), changelog_key(upto + 1))
            return upto + 1 - first

    def _first_change_seq(self) -> int | None:
        for key, _ in self._scan(CHANGELOG_PREFIX, CHANGELOG_END, reverse=False):
            return int.from_bytes(key[len(CHANGELOG_PREFIX):], "big")
        return None

    def _open(self, read_only: bool) -> "OccTxn":
        with self._commit_lock:
            start = self._version
            self._active[start] += 1
        return OccTxn(_LocalReader(self), start, read_only, self._commit, self._release,
                      self._check)

    def _finish(self, start: int) -> None:
        """Called with the commit lock held when a transaction ends either way."""
        self._active[start] -= 1
        if not self._active[start]:
            del self._active[start]
        oldest = min(self._active, default=self._version)
        while self._history and self._history[0][0] <= oldest:
            self._history.popleft()

    def _release(self, txn: "OccTxn") -> None:
        with self._commit_lock:
            self._finish(txn.start)

    def _commit(self, txn: "OccTxn", header: bytes, wait_durable: bool) -> int | None:
        with self._commit_lock:
            try:
                self._validate(txn)
                if not txn.writes:
                    seen = self._version
                    version = None
                else:
                    version = seen = self._version + 1
                    writes = dict(txn.writes)
                    writes[changelog_key(version)] = changelog.encode(version, header, txn.writes)
                    self._apply(writes)
                    self._version = version
                    self._history.append((version, frozenset(txn.writes)))
                    self._committed.notify_all()
            finally:
                self._finish(txn.start)
        if wait_durable:
            self._turns.leave()     # the log sync is I/O: others may run meanwhile
            self._wait_durable(seen)
        return version

    def _check(self, txn: "OccTxn") -> None:
        with self._commit_lock:
            self._validate(txn)

    def _validate(self, txn: "OccTxn") -> None:
        newer = []
        for version, written in reversed(self._history):
            if version <= txn.start:
                break
            newer.append(written)
        check_conflicts(txn, newer)

    def snapshot_scan(self, start: bytes, end: bytes) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
        with self._commit_lock:   # the iterator is a point-in-time view: pin it with its seq
            return self._version, self._scan_pinned(start, end)

    @abc.abstractmethod
    def _scan_pinned(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """A scan whose store view is fixed when this is called (not when iterated)."""

    def _wait_durable(self, version: int) -> None:
        with self._durable_cond:
            while self._durable < version:
                if self._syncing:
                    self._durable_cond.wait()
                    continue
                self._syncing = True
                target = self._version
                self._durable_cond.release()
                try:
                    self._sync()
                except Exception as exc:
                    raise CommitUnknown(f"{self.url}: log sync failed: {exc}") from exc
                finally:
                    self._durable_cond.acquire()
                    self._syncing = False
                    self._durable_cond.notify_all()
                self._durable = max(self._durable, target)


class Turns:
    """One transaction at a time, per engine. A thread waits at most TURN_WAIT_S for its
    turn and then runs anyway, so a long transaction (a tree walk) delays the others by
    that much at most. Nested turns (an id reservation inside a create) pass through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mine = threading.local()

    def take(self) -> contextlib.AbstractContextManager:
        if getattr(self._mine, "held", None) is not None:
            return _PASS_THROUGH
        return _Turn(self)

    def leave(self) -> None:
        """End this thread's turn early (before it waits on I/O)."""
        if getattr(self._mine, "held", None):
            self._mine.held = False
            self._lock.release()


class _Turn:
    """One thread's turn (a plain context manager: this is on every transaction's path)."""
    __slots__ = ("_turns",)

    def __init__(self, turns: Turns) -> None:
        self._turns = turns

    def __enter__(self) -> None:
        turns = self._turns
        turns._mine.held = turns._lock.acquire(timeout=TURN_WAIT_S)

    def __exit__(self, *exc_info) -> None:
        self._turns.leave()
        self._turns._mine.held = None


_PASS_THROUGH = contextlib.nullcontext()


def check_conflicts(txn: "OccTxn", newer_write_sets: Iterable[Collection[bytes]]) -> None:
    """Backward validation: raise TxnConflict if any write set committed after the
    transaction began touches a key it read or a range it scanned."""
    for written in newer_write_sets:
        if not txn.read_keys.isdisjoint(written):
            raise TxnConflict("a key this transaction read was changed")
        for low, high in txn.read_ranges:
            if any(low <= key < high for key in written):
                raise TxnConflict("a range this transaction scanned was changed")


def decode_seq(raw: bytes | None) -> int:
    if raw is None:
        raise EngineUnavailable("the change sequence key is missing from the store")
    return int.from_bytes(raw, "big")


def check_change_log(txn: "OccTxn", seq: int, records: Sequence[bytes | None]) -> None:
    """Backward validation against the stored change records txn.start+1..seq (in that
    order, None where missing), read under the sequence lock. A missing record was
    trimmed before this transaction could check it: that is a conflict too."""
    if len(records) != seq - txn.start or None in records:
        raise TxnConflict("change records this transaction must check were trimmed")
    check_conflicts(txn, [{key for key, _ in changelog.decode(r).writes} for r in records])


# --- the log-validated commit of the drivers over a shared store (SQL, TiKV) --------------
# Under the sequence lock: check_change_log, then log_commit; trim_span for trimming.

TRIM_CHUNK = 10_000     # change records deleted per transaction


def log_commit(writes: dict[bytes, bytes | None], txn: "OccTxn", seq: int,
               header: bytes) -> None:
    """Add to `writes` txn's writes, its change record under `seq`, and `seq` as the
    newest sequence: what its commit stores (several commits may share one `writes`)."""
    writes.update(txn.writes)
    writes[changelog_key(seq)] = changelog.encode(seq, header, txn.writes)
    writes[SEQ_KEY] = seq.to_bytes(8, "big")


def trim_span(newest: int, keep: int, oldest: int | None) -> tuple[int, int] | None:
    """The change sequences [first, stop) one trim transaction deletes, at most
    TRIM_CHUNK of them, to keep the newest `keep` of those up to `newest` (`oldest`:
    the oldest stored one, if any); None when there is nothing to delete."""
    upto = newest - keep
    first = upto + 1 if oldest is None else oldest
    if upto < first:
        return None
    return first, min(upto + 1, first + TRIM_CHUNK)


class OpenTransactions:
    """Counts a driver's unfinished transactions, for Engine.active_transactions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def opened(self) -> None:
        with self._lock:
            self._count += 1

    def finished(self) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        return self._count


class Reader(Protocol):
    """Where a transaction's reads go: the committed store, as the driver sees it."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def scan(self, start: bytes, end: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]: ...


class _LocalReader:
    """The Reader of an in-process store: its driver primitives."""

    def __init__(self, engine: OccEngine) -> None:
        self.get, self.get_many, self.scan = engine._get, engine._get_many, engine._scan


class OccTxn(Txn):
    """Buffers writes, records reads, and merges its own writes into what it reads.

    Reads go to `reader`; commit and rollback are handed to the driver's callbacks,
    which validate with check_conflicts and apply `writes` atomically."""

    def __init__(self, reader: Reader, start: int, read_only: bool,
                 on_commit: Callable[["OccTxn", bytes, bool], int | None],
                 on_rollback: Callable[["OccTxn"], None],
                 on_validate: Callable[["OccTxn"], None] | None = None,
                 counter: OpenTransactions | None = None) -> None:
        self.reader = reader
        self.start = start
        self.read_only = read_only
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        # None: the reader serves one MVCC snapshot, consistent by construction.
        self._on_validate = on_validate
        self.writes: dict[bytes, bytes | None] = {}
        # A read-only transaction remembers what get_many found, so a group of reads can
        # fetch its keys in one round trip and then get() them one by one.
        self._fetched: dict[bytes, bytes | None] = {}
        self.read_keys: set[bytes] = set()
        self.read_ranges: list[list[bytes]] = []
        self._done = False
        self._counter = counter
        if counter is not None:
            counter.opened()

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        if key in self._fetched:
            return self._fetched[key]
        self.read_keys.add(key)
        return self.reader.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        missing = [k for k in keys if k not in self.writes]
        self.read_keys.update(missing)
        found = dict(zip(missing, self.reader.get_many(missing))) if missing else {}
        if self.read_only:
            self._fetched.update(found)
        return [self.writes[k] if k in self.writes else found[k] for k in keys]

    def scan(self, start: bytes, end: bytes, limit: int | None = None,
             reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if limit is not None and limit <= 0:
            return
        # The covered range grows as pairs are returned; see the module docstring.
        covered = [end, end] if reverse else [start, start]
        self.read_ranges.append(covered)
        pending = sorted(k for k in self.writes if start <= k < end)
        if reverse:
            pending.reverse()
        returned = 0
        for key, value in _merge(self.reader.scan(start, end, reverse), pending,
                                 self.writes, reverse):
            if reverse:
                covered[0] = key
            else:
                covered[1] = key + b"\x00"
            if value is None:
                continue
            yield key, value
            returned += 1
            if limit is not None and returned >= limit:
                return
        covered[:] = [start, end]

    def put(self, key: bytes, value: bytes) -> None:
        if self.read_only:
            raise ReadOnlyTxn("put in a read-only snapshot")
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        if self.read_only:
            raise ReadOnlyTxn("delete in a read-only snapshot")
        self.writes[key] = None

    def commit(self, change_header: bytes = b"", wait_durable: bool = True) -> int | None:
        self._close()
        return self._on_commit(self, change_header, wait_durable)

    def rollback(self) -> None:
        if not self._done:
            self._close()
            self._on_rollback(self)

    def validate(self) -> None:
        if self._on_validate is not None:
            self._on_validate(self)

    def _close(self) -> None:
        if self._done:
            raise EngineError("transaction already finished")
        self._done = True
        if self._counter is not None:
            self._counter.finished()


def _merge(stored: Iterator[tuple[bytes, bytes]], pending: list[bytes],
           writes: dict[bytes, bytes | None], reverse: bool) -> Iterator[tuple[bytes, bytes | None]]:
    """Stored pairs overlaid with this transaction's writes (None = deleted), in order."""
    before = (lambda a, b: a > b) if reverse else (lambda a, b: a < b)
    i = 0
    for key, value in stored:
        while i < len(pending) and before(pending[i], key):
            yield pending[i], writes[pending[i]]
            i += 1
        if i < len(pending) and pending[i] == key:
            yield key, writes[key]
            i += 1
        else:
            yield key, value
    for key in pending[i:]:
        yield key, writes[key]
