"""TiKV engine (tikv-client): the KV contract over TiKV's transactional API.

URL: `tikv://pd1:2379,pd2:2379[/prefix]`. Every key is stored under `prefix/` (when
given), so several namespaces can share one cluster.

Isolation: the same OCC as the SQL engine (engines/sql.py), over TiKV transactions.
A transaction is a pessimistic TiKV transaction whose plain reads come from its start
timestamp's snapshot; its first read is SEQ_KEY, the newest committed change sequence,
so `start` names exactly what the snapshot shows. Writes are buffered by OccTxn. At
commit, `get_for_update(SEQ_KEY)` locks the sequence key and reads its newest value;
every mutating commit holds that lock until it commits, so sequences are gap-free and
in commit order. The change records (start, now] are read with
`batch_get_for_update` (newest values, not the snapshot's), `check_conflicts` compares
their write sets with what this transaction read, and the writes, the change record
and the new sequence are committed. Read-only transactions read one TSO snapshot and
need no validation.

TiKV-side limits worth knowing: a snapshot older than the GC life time
(`tikv_gc_life_time`, 10 min by default) cannot be read, so a dump must finish within
it or the GC safe point be held back; tikv-client 0.0.4 has no reverse scan, so a
reverse scan here reads its whole range forwards first (the namespace never does one).

tikv-client 0.0.4 answers on asyncio futures of a running loop: the engine runs one
event loop in a daemon thread and waits on it from the callers' threads. Its errors
are plain Exceptions with TiKV's message; `classify` reads them. No TiKV/PD server
was available where this was written: tests run only with METASERVER_TEST_TIKV_PD.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from engines import NotFormatted
from engines.contract import (
    CHANGELOG_END,
    CHANGELOG_PREFIX,
    CommitSignal,
    CommitUnknown,
    Engine,
    EngineError,
    EngineUnavailable,
    Txn,
    TxnConflict,
    changelog_key,
    changelog_seq,
    poll_for_commit,
)
from engines.occ import (SEQ_KEY, OccTxn, OpenTransactions, check_change_log, decode_seq, log_commit,
                         trim_span)

T = TypeVar("T")
_PAGE = 256
# TiKV key errors (Rust Debug text) that mean "lost a race, nothing applied: retry".
_RETRY = re.compile(r"WriteConflict|Deadlock|AlreadyExist|TxnLockNotFound|CommitTsExpired|"
                    r"PessimisticLockNotFound|retryable: \"[^\"]")


def classify(exc: BaseException, committing: bool = False) -> EngineError:
    """The contract error for a tikv-client error; the only place that decides."""
    if isinstance(exc, EngineError):
        return exc
    message = f"TiKV: {exc}"
    if _RETRY.search(str(exc)):
        return TxnConflict(message)
    if committing:
        return CommitUnknown(message)       # e.g. "UndeterminedError" after prewrite
    return EngineUnavailable(message)


class _Loop:
    """One asyncio loop in a daemon thread; callers block on what they submit."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tikv-client",
                                        daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]], committing: bool = False) -> T:
        """Await make() on the loop (tikv-client must be called there)."""
        async def call() -> T:
            try:
                return await make()
            except Exception as exc:
                error = classify(exc, committing)
            # Raised without the client's exception attached: objects tikv-client made
            # must not outlive the call (freeing them at exit crashes the interpreter).
            raise error
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class _Reader:
    """Reads of one TiKV transaction or snapshot, keys under the engine's prefix."""

    def __init__(self, engine: TikvEngine, source) -> None:
        self.engine, self.source = engine, source
        self._run, self._p = engine._loop.run, engine._prefix

    def get(self, key: bytes) -> bytes | None:
        return self._run(lambda: self.source.get(self._p + key))

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found = self._run(lambda: self.source.batch_get([self._p + k for k in keys]))
        return [found.get(self._p + k) for k in keys]

    def scan(self, start: bytes, end: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        if reverse:     # no reverse scan in tikv-client 0.0.4: read forwards, then turn
            yield from reversed(list(self.scan(start, end, reverse=False)))
            return
        cut, cursor = len(self._p), self._p + start
        while True:
            page = self._run(lambda: self.source.scan(cursor, self._p + end, _PAGE))
            for key, value in page.items():
                if key[cut:] != SEQ_KEY:
                    yield key[cut:], value
            if len(page) < _PAGE:
                return
            cursor = max(page) + b"\x00"


class TikvEngine(Engine):
    def __init__(self, url: str, create: bool = False) -> None:
        self.url = url
        parts = urlsplit(url)
        prefix = parts.path.strip("/")
        self._prefix = prefix.encode() + b"/" if prefix else b""
        try:
            from tikv_client import asynchronous as tikv
        except ImportError as exc:
            raise EngineUnavailable(f"{url}: tikv-client is not installed "
                                    "(pip install 'metaserver[tikv]')") from exc
        self._loop = _Loop()
        self._open_txns = OpenTransactions()
        self._commits = CommitSignal()
        try:
            self._client = self._loop.run(
                lambda: tikv.TransactionClient.connect(parts.netloc.split(",")))
            self._init_seq(create)
        except EngineError:
            self._loop.close()
            raise

    def _init_seq(self, create: bool) -> None:
        """Write the sequence key of a new store (only if `create`: under a prefix that
        has none, there is no store, and that is NotFormatted)."""
        txn = self._loop.run(lambda: self._client.begin(True))
        key = self._prefix + SEQ_KEY
        if self._loop.run(lambda: txn.get_for_update(key)) is None:
            if not create:
                self._loop.run(txn.rollback)
                raise NotFormatted(self.url)
            self._loop.run(lambda: txn.put(key, (0).to_bytes(8, "big")))
            self._loop.run(txn.commit, committing=True)
        else:
            self._loop.run(txn.rollback)

    # --- Engine -------------------------------------------------------------------------
    def begin(self) -> Txn:
        tikv_txn = self._loop.run(lambda: self._client.begin(True))
        reader = _Reader(self, tikv_txn)
        try:
            start = decode_seq(reader.get(SEQ_KEY))
        except EngineError:
            self._rollback(tikv_txn)
            raise
        return OccTxn(reader, start, False, self._commit, self._release,
                      counter=self._open_txns)

    def snapshot(self) -> Txn:
        return OccTxn(_Reader(self, self._snapshot()), 0, True, self._commit, self._release,
                      counter=self._open_txns)

    def active_transactions(self) -> int:
        return self._open_txns.count

    def _snapshot(self):
        timestamp = self._loop.run(self._client.current_timestamp)
        return self._client.snapshot(timestamp, False)

    def _release(self, txn: OccTxn) -> None:
        if not txn.read_only:
            self._rollback(txn.reader.source)

    def _rollback(self, tikv_txn) -> None:
        try:
            self._loop.run(tikv_txn.rollback)
        except EngineError:
            pass    # the locks expire by their TTL

    def _commit(self, txn: OccTxn, header: bytes, wait_durable: bool) -> int | None:
        if not txn.writes:
            self._release(txn)
            return None
        tikv_txn, run, p = txn.reader.source, self._loop.run, self._prefix
        try:
            seq = decode_seq(run(lambda: tikv_txn.get_for_update(p + SEQ_KEY)))
            if seq > txn.start:     # locking reads see the newest records
                keys = [p + changelog_key(s) for s in range(txn.start + 1, seq + 1)]
                found = run(lambda: tikv_txn.batch_get_for_update(keys))
                check_change_log(txn, seq, [found.get(k) for k in keys])
            seq += 1
            writes: dict[bytes, bytes | None] = {}
            log_commit(writes, txn, seq, header)
            run(lambda: tikv_txn.lock_keys([p + k for k in writes]))   # one round trip
            for key, value in writes.items():
                if value is None:
                    run(lambda: tikv_txn.delete(p + key))
                else:
                    run(lambda: tikv_txn.put(p + key, value))
        except EngineError:
            self._rollback(tikv_txn)
            raise
        run(tikv_txn.commit, committing=True)
        self._commits.committed(seq)
        return seq

    def snapshot_scan(self, start: bytes, end: bytes) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
        reader = _Reader(self, self._snapshot())
        return decode_seq(reader.get(SEQ_KEY)), reader.scan(start, end, reverse=False)

    def wait_durable(self) -> None:
        """Nothing to wait for: a TiKV commit is replicated by Raft before it returns."""

    def last_seq(self) -> int:
        return decode_seq(_Reader(self, self._snapshot()).get(SEQ_KEY))

    def wait_for_commit(self, after_seq: int, timeout: float) -> int:
        return poll_for_commit(self, self._commits, after_seq, timeout)

    def trim_changes(self, keep: int) -> int:
        dropped = 0
        while True:
            tikv_txn = self._loop.run(lambda: self._client.begin(True))
            reader = _Reader(self, tikv_txn)
            try:
                newest = decode_seq(self._loop.run(
                    lambda: tikv_txn.get_for_update(self._prefix + SEQ_KEY)))
                oldest = next((changelog_seq(k) for k, _ in
                               reader.scan(CHANGELOG_PREFIX, CHANGELOG_END, False)), None)
                span = trim_span(newest, keep, oldest)
                if span is None:
                    self._rollback(tikv_txn)
                    return dropped
                first, stop = span
                keys = [self._prefix + changelog_key(s) for s in range(first, stop)]
                self._loop.run(lambda: tikv_txn.lock_keys(keys))     # one round trip
                for key in keys:
                    self._loop.run(lambda: tikv_txn.delete(key))
            except EngineError:
                self._rollback(tikv_txn)
                raise
            self._loop.run(tikv_txn.commit, committing=True)
            dropped += stop - first

    def close(self) -> None:
        self._loop.close()

