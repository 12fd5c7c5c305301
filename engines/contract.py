"""The transactional key-value contract every engine driver implements.

The namespace layer sees only this: ordered byte keys, serializable transactions,
range scans, and a change log appended atomically with each committed mutation.
Drivers stay thin; all file-system logic lives above this line.

Errors a driver raises are the classes below, never the engine's own exceptions:
engines.transactional retries ``TxnConflict`` and ``CommitUnknown`` (the latter is safe
only because every transaction it runs can tell or tolerate its own earlier commit:
mutations carry request ids) and ``EngineUnavailable`` for a short while, then reports
it; ``OutOfCluster`` at once.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence

# Keys starting with this byte belong to the engine layer, not the namespace.
ENGINE_RESERVED_PREFIX = b"\xff"
# Change log: CHANGELOG_PREFIX + seq (8 bytes, big-endian) -> encoded change record.
CHANGELOG_PREFIX = b"\xffC"
CHANGELOG_END = b"\xffD"


def changelog_key(seq: int) -> bytes:
    return CHANGELOG_PREFIX + seq.to_bytes(8, "big")


def changelog_seq(key: bytes) -> int:
    return int.from_bytes(key[len(CHANGELOG_PREFIX):], "big")


class EngineError(Exception):
    """Base of every error a driver raises."""


class TxnConflict(EngineError):
    """Another transaction changed what this one read: retry from the start."""


class CommitUnknown(EngineError):
    """The commit may or may not have been applied (lost connection during commit)."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached or has failed; nothing was applied."""


class OutOfCluster(EngineUnavailable):
    """The node this process talks to says it is not part of its cluster's primary
    component (Galera error 1047): it refuses queries until it rejoins, which takes
    seconds. Not worth retrying here; the client may retry later, or elsewhere."""


# What a caller may retry from the start: nothing was applied, or (CommitUnknown) the
# request id's stored first result will say whether it was.
RETRYABLE = (TxnConflict, CommitUnknown, EngineUnavailable)


class ReadOnlyTxn(EngineError):
    """A write was attempted through a read-only snapshot."""


class Txn(abc.ABC):
    """One serializable transaction. Reads see this transaction's own writes.

    Use it as a context manager: leaving the block rolls back whatever was not
    committed. A transaction that is never finished is a leak (an OCC engine keeps every
    later commit's write set for it to validate against; a SQL engine holds a pooled
    connection), so callers never hold one outside a `with` block."""

    def __enter__(self) -> "Txn":
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()

    @abc.abstractmethod
    def get(self, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    @abc.abstractmethod
    def scan(self, start: bytes, end: bytes, limit: int | None = None,
             reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with start <= key < end, ascending (or descending if reverse)."""

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes) -> None: ...

    @abc.abstractmethod
    def delete(self, key: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self, change_header: bytes = b"", wait_durable: bool = True) -> int | None:
        """Make the writes durable and visible atomically.

        A transaction that wrote anything also appends one change record (the header
        plus its write set) under the next commit sequence, in the same atomic step, and
        returns that sequence. Sequences are gap-free and in commit order. A read-only
        transaction validates that what it read was one consistent state and returns None.
        With wait_durable=False the caller must call Engine.wait_durable() before it
        acknowledges anything (lets a batch of transactions share one log sync).
        """

    @abc.abstractmethod
    def rollback(self) -> None:
        """Abandon the transaction; does nothing once it has finished either way."""

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise TxnConflict unless everything read so far is one consistent state.

        The runner calls this before it reports an error an operation raised: an answer
        drawn from a mix of two states must be retried, not returned."""


class Engine(abc.ABC):
    """A handle on one store. Thread-safe: many transactions may run at once."""

    url: str

    @abc.abstractmethod
    def begin(self) -> Txn: ...

    @abc.abstractmethod
    def snapshot(self) -> Txn:
        """A read-only transaction (writes raise ReadOnlyTxn)."""

    @abc.abstractmethod
    def snapshot_scan(self, start: bytes, end: bytes) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
        """A point-in-time scan of [start, end) that never conflicts, however long it
        runs (dumps, followers' bootstrap), and the change sequence it is consistent with:
        it shows exactly the effects of change records 1..seq."""

    @abc.abstractmethod
    def wait_durable(self) -> None:
        """Return once everything committed so far is durable."""

    def turn(self) -> contextlib.AbstractContextManager:
        """Held by engines.transactional.run around each attempt, up to its commit: an
        engine whose transactions never wait on I/O serializes them here (see
        engines.occ.Turns). The default, for engines that talk to a server, lets them
        all run at once."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def last_seq(self) -> int:
        """The newest committed change sequence (0 when none)."""

    def wait_for_commit(self, after_seq: int, timeout: float) -> int:
        """The newest change sequence as soon as it is past `after_seq`, or once
        `timeout` seconds pass. This default looks again at growing intervals (commits
        may come from other processes); drivers wake at once on their own commits."""
        return poll_for_commit(self, None, after_seq, timeout)

    @abc.abstractmethod
    def trim_changes(self, keep: int) -> int:
        """Drop all but the newest ``keep`` change records; returns how many were dropped."""

    @abc.abstractmethod
    def active_transactions(self) -> int:
        """How many transactions of this handle are open (begun, not finished): 0 when
        idle. Tests assert it after every operation that must not leak one."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def disk_usage(self) -> int | None:
        """Bytes the engine occupies on disk, when it can tell."""
        return None


FIRST_POLL_S, MAX_POLL_S = 0.005, 0.1      # waiting for other processes' commits


class CommitSignal:
    """Wakes the threads waiting for a commit when this process makes one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._newest = 0

    def committed(self, seq: int | None) -> None:
        if seq is None:
            return
        with self._cond:
            if seq > self._newest:
                self._newest = seq
                self._cond.notify_all()

    def wait(self, after_seq: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._newest > after_seq, timeout)


def poll_for_commit(engine: Engine, signal: CommitSignal | None, after_seq: int,
                    timeout: float) -> int:
    """Engine.wait_for_commit for a store other processes also commit to: look at
    intervals growing while nothing comes, and at once when this process commits."""
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL_S
    while True:
        newest = engine.last_seq()
        remaining = deadline - time.monotonic()
        if newest > after_seq or remaining <= 0:
            return newest
        if signal is None:
            time.sleep(min(pause, remaining))
        else:
            signal.wait(after_seq, min(pause, remaining))
        pause = min(pause * 2, MAX_POLL_S)
