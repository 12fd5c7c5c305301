"""The runner: the one place namespace operations run, each in a transaction.

Every operation call goes through `Runner.call` (one operation), `call_atomic` (many
operations in one transaction, all or nothing) or `call_many` (independent operations
whose commits share one log sync). The runner:

* begins a transaction (a read-only snapshot for read operations),
* for a mutation with a request id, first looks for that id's stored result and returns
  it instead of running again: a retry after an unknown commit never applies twice,
* runs the operation, writes the usage delta, the request record and the change record
  header (operation + request id) in the same transaction, commits,
* retries conflicts and unknown commits with jittered exponential backoff, an
  unavailable engine only briefly, never past the caller's deadline (the loop is
  engines.transactional's, shared by every caller that commits),
* counts calls, errors, retries and latency (prometheus-client).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import itertools
import random
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Histogram

from engines import NotFormatted, is_ephemeral, open_engine, transactional
from engines.contract import CommitUnknown, Engine, EngineUnavailable, OutOfCluster, TxnConflict
from metaserver import schema
from metaserver.errors import BatchError, FsError
from metaserver.ops import INTERNAL_OPS, OPS, Op
from metaserver.ops.metatx import MetaTx, OpContext
from metaserver.types import NAME_MAX

OPS_TOTAL = Counter("metaserver_ops_total", "Operations run, by outcome", ["op", "outcome"])
OP_SECONDS = Histogram("metaserver_op_seconds", "Operation latency including retries", ["op"],
                       buckets=(.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1,
                                .25, .5, 1, 2.5))
RETRIES = Counter("metaserver_txn_retries_total", "Transaction attempts that were retried",
                  ["op", "reason"])

MAX_ATOMIC_OPS = 256
MAX_REQUEST_ID = 64
# Retries follow engines.transactional.RETRY (conflicts and unknown commits for 10 s, an
# unavailable engine for 2 s: a longer outage is the client's to retry, maybe on another
# server; OutOfCluster not at all), and none outlasts the caller's deadline less
# DEADLINE_MARGIN_S, for the answer to get there.
DEADLINE_MARGIN_S = 0.1
_WRITE = Op("unknown", None, True)   # unknown names take the write path, which reports them


def check_format(engine: Engine) -> None:
    """Raise NotFormatted if `engine` holds no namespace, FsError EPROTO if this
    metaserver cannot read its data format."""
    with engine.snapshot() as txn:
        marker = txn.get(schema.counter_key("format"))
    if marker is None:
        raise NotFormatted(engine.url)
    if schema.decode_i64(marker) != schema.FORMAT_VERSION:
        raise FsError(errno.EPROTO, f"data format {schema.decode_i64(marker)} is not "
                      f"{schema.FORMAT_VERSION}: this metaserver cannot use it")


class IdAllocator:
    """Hands out ids from a counter, reserving `batch` at a time in its own transaction."""

    def __init__(self, runner: "Runner", counter: str, batch: int) -> None:
        self._runner, self._counter, self._batch = runner, counter, batch
        self._lock = threading.Lock()
        self._next = self._end = 0

    def __call__(self) -> int:
        with self._lock:
            if self._next >= self._end:
                # No wait for the log sync here (it would stall every create behind it):
                # a commit that uses these ids comes later in the log, so it is durable
                # only once this reservation is too.
                self._next = self._runner.call_internal(
                    "reserve_ids", wait_durable=False, counter=self._counter, count=self._batch)
                self._end = self._next + self._batch
            self._next += 1
            return self._next - 1


def open_namespace(url: str) -> Engine:
    """The engine at `url`, which must hold a formatted namespace (else NotFormatted, and
    nothing is created). memory:// is new and empty on every open: it is formatted here."""
    engine = open_engine(url)
    try:
        if is_ephemeral(url):
            format_namespace(engine)
        else:
            check_format(engine)
    except BaseException:
        engine.close()
        raise
    return engine


def format_namespace(engine: Engine) -> None:
    """Format an empty store: write the root directory and the format marker. Refuses
    (FsError EEXIST) a store that holds anything, so formatting never overwrites data."""
    Runner(engine, formatting=True).call_internal("init_root")


class Runner:
    def __init__(self, engine: Engine, *, max_attempts: int = 50, inode_batch: int = 1024,
                 dir_mtime_skip_ns: int = 100_000_000, formatting: bool = False) -> None:
        """A runner over a formatted namespace: NotFormatted if `engine` holds none
        (`formatting` is for format_namespace alone), FsError EPROTO if this metaserver
        cannot read its data format."""
        if not formatting:
            check_format(engine)
        self.engine = engine
        self.policy = dataclasses.replace(transactional.RETRY, attempts=max_attempts)
        self.writer_id = random.getrandbits(63)
        self._delta_seq = itertools.count(1).__next__
        self._folded_after = 1          # usage deltas below this number are folded
        self._dir_mtime_skip_ns = dir_mtime_skip_ns
        self._alloc_ino = IdAllocator(self, "nextInode", inode_batch)
        self._commits = threading.local()

    def take_commit_seq(self) -> int:
        """The newest change sequence this thread's mutations committed (or, for a replayed
        request id, a sequence at or after the first commit) since the last take; 0 if none.
        Followers wait until they have applied it before answering a forwarded write."""
        seq = getattr(self._commits, "seq", 0)
        self._commits.seq = 0
        return seq

    def _committed(self, seq: int) -> None:
        self._commits.seq = max(getattr(self._commits, "seq", 0), seq)

    # --- public entry points ------------------------------------------------------------
    def call(self, op: str, request_id: bytes = b"", *, deadline: float | None = None,
             **kwargs):
        """Run one operation. `deadline` (time.monotonic() seconds; every entry point
        takes one) is when the caller stops waiting: retries end before it."""
        spec = _lookup(op)
        return self._timed(op, lambda: self._run(
            op, spec.mutating, request_id, lambda tx: spec.fn(tx, **kwargs),
            calls=[(op, kwargs)], deadline=deadline))

    def call_atomic(self, calls: list[tuple[str, dict]], request_id: bytes = b"",
                    deadline: float | None = None) -> list:
        """Run operations in order in one transaction; a failure applies none of them
        and raises BatchError naming the failed operation's index."""
        if not calls:
            return []
        if len(calls) > MAX_ATOMIC_OPS:
            raise FsError(errno.E2BIG, f"an atomic batch holds at most {MAX_ATOMIC_OPS} operations")
        specs = [(_lookup(op), kwargs) for op, kwargs in calls]
        mutating = any(spec.mutating for spec, _ in specs)

        def body(tx: MetaTx) -> list:
            results = []
            for index, (spec, kwargs) in enumerate(specs):
                try:
                    results.append(spec.fn(tx, **kwargs))
                except FsError as exc:
                    raise BatchError(index, exc) from exc
            return results

        return self._timed("atomic_batch", lambda: self._run(
            "atomic_batch", mutating, request_id, body, calls=calls, deadline=deadline))

    def call_many(self, calls: list[tuple[str, bytes, dict]],
                  deadline: float | None = None) -> list:
        """Independent operations (op, request id, kwargs), each its own transaction;
        commits are acknowledged together after one log sync. Each result is the
        operation's value or the FsError it raised. Consecutive reads share one
        read-only transaction (one consistent view, and far less overhead per stat)."""
        results: list = []
        try:
            with self.engine.turn():    # one turn for the batch, not one per transaction
                self._many(calls, deadline, results)
        finally:   # whatever happened, nothing is acknowledged before it is durable
            self._durable()
        return results

    def _many(self, calls: list[tuple[str, bytes, dict]], deadline: float | None,
              results: list) -> None:
        index = 0
        while index < len(calls):
            end = index
            while end < len(calls) and not OPS.get(calls[end][0], _WRITE).mutating:
                end += 1
            if end > index:
                results += self._read_group(calls[index:end], deadline)
                index = end
                continue
            op, request_id, kwargs = calls[index]
            spec = _lookup(op)
            try:
                results.append(self._timed(op, lambda: self._run(
                    op, True, request_id, lambda tx: spec.fn(tx, **kwargs),
                    wait_durable=False, calls=[(op, kwargs)], deadline=deadline)))
            except FsError as exc:
                results.append(exc)
            index += 1

    def _read_group(self, calls: list[tuple[str, bytes, dict]], deadline: float | None) -> list:
        """Consecutive reads of a Batch in one read-only transaction. Each is counted
        under its own op; the latency histogram gets the group's (per-op observations
        cost more than a stat itself)."""
        def body(tx: MetaTx) -> list:
            _prefetch(tx, calls)
            results = []
            for op, _, kwargs in calls:
                try:
                    results.append(OPS[op].fn(tx, **kwargs))
                except FsError as exc:
                    results.append(exc)
            return results
        results = self._timed("read_group", lambda: self._run(
            "read_group", False, b"", body, wait_durable=False, deadline=deadline))
        outcomes = collections.Counter(
            (op, _outcome(result) if isinstance(result, FsError) else "ok")
            for (op, _, _), result in zip(calls, results))
        for (op, outcome), count in outcomes.items():
            OPS_TOTAL.labels(op, outcome).inc(count)
        return results

    def call_internal(self, op: str, wait_durable: bool = True, **kwargs):
        spec = INTERNAL_OPS[op]
        return self._run(op, spec.mutating, b"", lambda tx: spec.fn(tx, **kwargs),
                         wait_durable=wait_durable)

    def expire_requests(self, older_than_ns: int, page: int = 10000) -> int:
        """Delete idempotency records written before `older_than_ns`, a page at a time."""
        expired, cursor = 0, schema.REQUEST_PREFIX
        while True:
            with self.engine.snapshot() as txn:
                # candidates only: expire_requests re-reads each one it deletes
                page_items = list(txn.scan(cursor, schema.REQUEST_END, limit=page))
            old = [k for k, v in page_items if schema.result_time(v) < older_than_ns]
            if old:
                expired += self.call_internal("expire_requests", keys=old,
                                              older_than_ns=older_than_ns)
            if len(page_items) < page:
                return expired
            cursor = page_items[-1][0] + b"\0"

    def fold_usage(self, page: int = 10000) -> int:
        """Fold the usage deltas this runner wrote so far into the counters, a page per
        transaction; returns how many. Each runner folds its own (deltas of runners
        that stopped stay counted by statfs; fsck --repair folds them)."""
        before = self._delta_seq()     # numbers handed out from now on lie above the range
        folded = 0
        while True:
            count, self._folded_after = self.call_internal(
                "fold_usage", writer=self.writer_id, after=self._folded_after, before=before,
                limit=page)
            folded += count
            if count < page:
                return folded

    # --- machinery ----------------------------------------------------------------------
    @staticmethod
    def _timed(label: str, fn: Callable):
        start = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            _record(label, start, exc)
            raise
        _record(label, start)
        return result

    def _run(self, label: str, mutating: bool, request_id: bytes, body: Callable,
             wait_durable: bool = True, calls: list[tuple[str, dict]] | None = None,
             deadline: float | None = None):
        if len(request_id) > MAX_REQUEST_ID:
            raise FsError(errno.EINVAL, f"request id longer than {MAX_REQUEST_ID} bytes")

        def attempt(txn):
            if mutating:
                prior = self._check_writable(txn, request_id)
                if prior is not None:   # nothing is written: the commit only validates
                    if schema.result_op(prior) != label:
                        raise FsError(errno.EINVAL, f"request id already used by "
                                      f"{schema.result_op(prior)!r}, not {label!r}")
                    if wait_durable:    # the first attempt may still await its log sync
                        self._durable()
                    # The first commit's sequence is not stored: the newest covers it.
                    self._committed(self.engine.last_seq())
                    return schema.decode_result(prior)
            ctx = OpContext(now_ns=time.time_ns(), alloc_ino=self._alloc_ino,
                            writer_id=self.writer_id, delta_seq=self._delta_seq,
                            dir_mtime_skip_ns=self._dir_mtime_skip_ns)
            tx = MetaTx(txn, ctx, read_only=not mutating)
            result = body(tx)
            if mutating:
                tx.flush_accounting()
                if request_id:
                    txn.put(schema.request_key(request_id),
                            schema.encode_result(ctx.now_ns, label, result))
            return result

        try:
            done = transactional.run(
                self.engine, attempt, policy=self.policy, read_only=not mutating,
                header=schema.change_header(label, request_id, calls) if mutating else b"",
                wait_durable=wait_durable,
                deadline=None if deadline is None else deadline - DEADLINE_MARGIN_S,
                on_retry=lambda exc: RETRIES.labels(label, type(exc).__name__).inc())
        except TxnConflict as exc:
            raise FsError(errno.EAGAIN, "gave up after conflicting attempts (the limit, or "
                          "the deadline, was reached); try again") from exc
        except CommitUnknown as exc:
            raise FsError(errno.EIO, f"commit outcome unknown after retries: {exc}") from exc
        except OutOfCluster as exc:
            raise FsError(errno.EIO, "metadata engine unavailable: its node is not part of "
                          f"the cluster's primary component: {exc}") from exc
        except EngineUnavailable as exc:
            raise FsError(errno.EIO, f"metadata engine unavailable: {exc}") from exc
        if done.seq:
            self._committed(done.seq)
        return done.value

    @staticmethod
    def _check_writable(txn, request_id: bytes) -> bytes | None:
        """Refuse a mutation on a superseded primary; return the request id's stored
        first result, if any. The epoch key is read inside the transaction, so a fence
        committed meanwhile makes this one conflict: nothing commits after a fence. A
        retry of a request this primary applied before its fence gets that answer, not
        EROFS: "refused" would tell the client it never happened."""
        keys = [schema.EPOCH_KEY, schema.request_key(request_id)] if request_id \
            else [schema.EPOCH_KEY]
        values = txn.get_many(keys)
        state = schema.decode_epoch(values[0])
        if state.fenced and not (request_id and values[1] is not None):
            raise FsError(errno.EROFS, f"this primary (epoch {state.epoch}) was superseded "
                          f"by epoch {state.superseded_by}: writes are refused")
        return values[1] if request_id else None

    def _durable(self) -> None:
        try:
            self.engine.wait_durable()
        except CommitUnknown as exc:
            raise FsError(errno.EIO, f"log sync failed: {exc}") from exc


def _prefetch(tx: MetaTx, calls: list[tuple[str, bytes, dict]]) -> None:
    """Fetch what a group's getattrs and lookups will read in two get_many calls (the
    entries, then every attribute: the directories', the entries' and the getattrs'),
    so each operation then reads from the snapshot's memory: one SQL round trip per
    kind of key instead of one per key. What an operation reads beyond these it reads
    itself, as before."""
    names = [(kw["parent"], kw["name"]) for op, _, kw in calls
             if op == "lookup" and _valid_ino(kw.get("parent"))
             and isinstance(kw.get("name"), bytes) and kw["name"] not in (b"", b".", b"..")
             and len(kw["name"]) <= NAME_MAX]
    inos = [kw["ino"] for op, _, kw in calls if op == "getattr" and _valid_ino(kw.get("ino"))]
    if len(names) + len(inos) < 2:
        return
    if names:
        inos += [found[1] for found in tx.dentries(names) if found is not None]
        inos += {parent for parent, _ in names}          # lookup checks its directory
    tx.prefetch_attrs([ino for ino in inos if _valid_ino(ino)])


def _valid_ino(ino) -> bool:
    return isinstance(ino, int) and 0 < ino < 1 << 64


@functools.cache
def _op_metrics(label: str):
    """The latency histogram and success counter of one operation (labels() is slow)."""
    return OP_SECONDS.labels(label), OPS_TOTAL.labels(label, "ok")


def _record(label: str, start: float, error: Exception | None = None) -> None:
    latency, ok = _op_metrics(label)
    latency.observe(time.perf_counter() - start)
    if error is None:
        ok.inc()
    else:
        OPS_TOTAL.labels(label, _outcome(error)).inc()


def _outcome(error: Exception) -> str:
    """The outcome label of a failed operation: its errno's name, or `internal`."""
    if isinstance(error, FsError):
        return errno.errorcode.get(error.errno, str(error.errno))
    return "internal"


def _lookup(op: str) -> Op:
    spec = OPS.get(op)
    if spec is None:
        raise FsError(errno.ENOSYS, f"unknown operation {op!r}")
    return spec
