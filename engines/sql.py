"""SQL engine: the KV contract over one table of a SQL database (SQLAlchemy Core).

Runs on MySQL/MariaDB (and the MySQL-protocol OceanBase and TiDB: docs/engines.md),
PostgreSQL and SQLite. Several metaserver processes may share one database.

Layout: `kv (k VARBINARY(512) PRIMARY KEY, v LONGBLOB)`. On MySQL the primary key is
the clustered index, so a directory listing (`k >= :a AND k < :b ORDER BY k LIMIT n`)
is an index range scan. The change log lives in the same table under CHANGELOG_PREFIX,
and SEQ_KEY holds the newest committed sequence (8 bytes, big-endian).

Isolation: the OCC of engines/occ.py, with the persistent change log in the role of its
in-memory history:

* A transaction reads one MVCC snapshot (REPEATABLE READ; SQLite: a deferred read
  transaction) whose first statement reads SEQ_KEY: that fixes the snapshot and tells
  which change sequence (`start`) it shows. Reads are plain, non-locking SELECTs; the
  OccTxn records what was read and buffers the writes.
* Commit ends the snapshot and opens a write transaction (READ COMMITTED on PostgreSQL,
  BEGIN IMMEDIATE on SQLite) that first locks the SEQ_KEY row. Every mutating commit
  of every process holds that lock until its COMMIT, so commits are serialized and
  sequences are gap-free and in commit order (AUTO_INCREMENT would not be: an id taken
  by a slow transaction can become visible after a later one). Under the lock, the
  change records (start, now] are read with a locking read (it sees the newest rows,
  unlike a snapshot read) and `check_conflicts` compares their write sets with this
  transaction's reads. Then the writes, the change record and the new sequence are
  written and committed. Records trimmed before a transaction could check them make
  it conflict.
* Read-only transactions just end: one MVCC snapshot is already one consistent state,
  and it is the state after exactly the commits 1..start.

REPEATABLE READ alone would allow lost updates and write skew; the validation above
is what makes every transaction serializable (tests/test_sql_engine.py shows both).

Errors are mapped to the contract's classes in one place, `classify`, and so are
errors of the rollback that gives a connection back to the pool (`_pooled`): Galera
repeats a cancelled commit's deadlock there, and a node outside the cluster refuses
it. A pooled connection the server dropped (a restart) is replaced when a
transaction's first statement finds it dead; nothing was read yet, so that retry is
invisible. The pool rolls back whatever a returned connection still has open.

On MariaDB Galera (found by asking the server, `wsrep_on`) every connection reads
causally (`wsrep_sync_wait=1`): a snapshot shows every commit acknowledged by any node
before it began (docs/engines.md, "Galera").

`?commit_via=HOST:PORT,HOST:PORT,...` in the URL sends the write transactions (and
the log trim) to the first of those nodes that answers, while snapshots stay on the
node the URL names. Galera certifies every commit against those of other nodes, and
every commit writes the sequence row: commits made on different nodes at once cancel
each other, while commits through one node queue on its row lock. A node that fails
(unreachable, or outside the primary component) hands the role to the next in the
list, which is safe whatever each server picked: certification still decides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from engines import BadEngineUrl, NotFormatted
from engines.contract import (
    CHANGELOG_END,
    CHANGELOG_PREFIX,
    CommitSignal,
    CommitUnknown,
    Engine,
    EngineError,
    EngineUnavailable,
    OutOfCluster,
    Txn,
    TxnConflict,
    changelog_key,
    changelog_seq,
    poll_for_commit,
)
from engines.occ import (SEQ_KEY, OccTxn, OpenTransactions, check_change_log, check_conflicts,
                         decode_seq, log_commit, trim_span)

MAX_KEY = 512
COMMIT_VIA = "commit_via"      # the URL's list of nodes to commit through
PREFERRED_AGAIN_S = 30.0       # after a failover, how soon to try the first node again
log = logging.getLogger(__name__)
_FIRST_PAGE, _MAX_PAGE = 32, 1024     # rows per scan query: small first, then growing

_metadata = sa.MetaData()
KV = sa.Table(
    "kv", _metadata,
    sa.Column("k", sa.LargeBinary(MAX_KEY).with_variant(mysql.VARBINARY(MAX_KEY), "mysql", "mariadb"),
              primary_key=True),
    sa.Column("v", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
              nullable=False),
    mysql_engine="InnoDB",
)
_k, _v = KV.c.k, KV.c.v
_GET = sa.select(_v).where(_k == sa.bindparam("k"))
_GET_MANY = sa.select(_k, _v).where(_k.in_(sa.bindparam("keys", expanding=True)))
_RANGE = (_k >= sa.bindparam("lo"), _k < sa.bindparam("hi"))
_SCAN = sa.select(_k, _v).where(*_RANGE).order_by(_k).limit(sa.bindparam("n"))
_SCAN_DESC = sa.select(_k, _v).where(*_RANGE).order_by(_k.desc()).limit(sa.bindparam("n"))
_READ_SEQ = sa.select(_v).where(_k == SEQ_KEY)
_LOCK_SEQ = _READ_SEQ.with_for_update()           # SQLite renders no FOR UPDATE: it
_LOCKED_RANGE = sa.select(_v).where(*_RANGE).order_by(_k).with_for_update()   # holds the
_DELETE_KEYS = sa.delete(KV).where(_k.in_(sa.bindparam("keys", expanding=True)))  # db lock
_DELETE_RANGE = sa.delete(KV).where(*_RANGE)


_MYSQL_SIZE = ("SELECT data_length + index_length FROM information_schema.tables "
               "WHERE table_schema = DATABASE() AND table_name = 'kv'")
_SIZE_QUERIES = {
    "mysql": _MYSQL_SIZE,
    "mariadb": _MYSQL_SIZE,
    "postgresql": "SELECT pg_total_relation_size('kv')",
    "sqlite": "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
}


def _upsert(dialect: str):
    """Insert-or-replace of many rows in one statement, in the dialect's words."""
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(KV)
        return stmt.on_duplicate_key_update(v=stmt.inserted.v)
    stmt = (postgresql if dialect == "postgresql" else sqlite_dialect).insert(KV)
    return stmt.on_conflict_do_update(index_elements=[_k], set_={"v": stmt.excluded.v})


# Server error numbers (MySQL protocol) and SQLSTATEs meaning "this transaction lost a
# race and was rolled back; run it again".
_MYSQL_RETRY = {
    1213,   # deadlock (Galera: also a commit that lost certification to another node's)
    1020,   # MariaDB innodb_snapshot_isolation: record changed since the snapshot
    8002, 8022, 8028, 9007,   # TiDB: cannot retry, retryable txn error, schema changed, write conflict
    6002, 6210,               # OceanBase: transaction rolled back, transaction timeout
}
_SQLSTATE_RETRY = {"40001", "40P01", "55P03"}     # serialization failure, deadlock, lock not available
_SQLITE_RETRY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# Galera: "WSREP has not yet prepared node for application use", the node is outside the
# primary component. (While it finds out, statements fail with 1205 lock wait timeout or
# 1180 error during commit: plain unavailability, like any error not named here.)
_MYSQL_OUT_OF_CLUSTER = 1047


def classify(exc: BaseException, committing: bool = False) -> EngineError:
    """The contract error for a database error; the only place that decides.

    Lost races (deadlock, serialization failure, busy database, duplicate key) are
    TxnConflict. Anything else is EngineUnavailable (OutOfCluster when a Galera node
    says it left the primary component) while nothing can have been applied, but
    CommitUnknown during COMMIT: a connection lost there may have lost only the answer
    (the runner's request ids settle it)."""
    if isinstance(exc, EngineError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    message = f"{type(orig).__name__}: {orig}"
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if (isinstance(exc, sa_exc.IntegrityError)
            or (isinstance(orig, sqlite3.Error) and sqlite_code is not None
                and sqlite_code & 0xFF in _SQLITE_RETRY)
            or (not isinstance(orig, sqlite3.Error) and code in _MYSQL_RETRY)
            or getattr(orig, "sqlstate", None) in _SQLSTATE_RETRY):
        return TxnConflict(message)
    if committing:
        return CommitUnknown(message)
    if code == _MYSQL_OUT_OF_CLUSTER and not isinstance(orig, sqlite3.Error):
        return OutOfCluster(message)
    return EngineUnavailable(message)


def _run(conn: sa.Connection, stmt, params: Any = None):
    try:
        return conn.execute(stmt, params)
    except sa_exc.SQLAlchemyError as exc:
        raise classify(exc) from exc


@contextlib.contextmanager
def _pooled(conn: sa.Connection) -> Iterator[sa.Connection]:
    """`conn` inside the block, back to the pool after it (rolling back what is open).

    The rollback can fail like any statement. If the block raised, its error is the
    cause and stands (a failed reset makes the pool discard the connection); else the
    rollback's own error is classified."""
    try:
        yield conn
    except BaseException:
        _discard(conn)
        raise
    _close(conn)


def _close(conn: sa.Connection) -> None:
    try:
        conn.close()
    except sa_exc.SQLAlchemyError as exc:
        raise classify(exc) from exc


def _discard(conn: sa.Connection) -> None:
    """Close while another error is on its way out: that one is the cause."""
    with contextlib.suppress(sa_exc.SQLAlchemyError):
        conn.close()


def _end(conn: sa.Connection, committing: bool = False) -> None:
    """COMMIT; `committing` says it may apply writes (so a lost answer is unknown)."""
    try:
        conn.commit()
    except sa_exc.SQLAlchemyError as exc:
        raise classify(exc, committing) from exc


class _Reader:
    """An OccTxn's reads: plain SELECTs on one connection's snapshot."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get(self, key: bytes) -> bytes | None:
        return _run(self.conn, _GET, {"k": key}).scalar()

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found = dict(_run(self.conn, _GET_MANY, {"keys": list(keys)}).all())
        return [found.get(k) for k in keys]

    def scan(self, start: bytes, end: bytes, reverse: bool,
             page: int = _FIRST_PAGE) -> Iterator[tuple[bytes, bytes]]:
        """Pages by key (each its own query), so memory stays bounded however long."""
        lo, hi = start, end
        while True:
            rows = _run(self.conn, _SCAN_DESC if reverse else _SCAN,
                        {"lo": lo, "hi": hi, "n": page}).all()
            for key, value in rows:
                if key != SEQ_KEY:      # engine bookkeeping, not a stored pair
                    yield key, value
            if len(rows) < page:
                return
            if reverse:
                hi = rows[-1][0]
            else:
                lo = rows[-1][0] + b"\x00"
            page = min(page * 4, _MAX_PAGE)


# A MySQL-protocol server that stops answering (paused, partitioned away) fails the
# statement waiting on it after these many seconds (EngineUnavailable, or CommitUnknown
# during COMMIT) instead of holding its thread for ever; `?read_timeout=N` and the
# others in the URL override them.
MYSQL_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 30, "write_timeout": 30}


class SqlEngine(Engine):
    def __init__(self, url: str, create: bool = False) -> None:
        self.url = url
        sa_url = sa.make_url(_driver_url(url))
        commit_nodes = _commit_nodes(sa_url)
        sa_url = sa_url.difference_update_query([COMMIT_VIA])
        self._dialect = sa_url.get_backend_name()
        # Connecting creates a missing SQLite file: look first, as for every engine.
        if self._dialect == "sqlite" and not create and not os.path.isfile(sa_url.database):
            raise NotFormatted(url)
        # A connection goes back to the pool with no transaction open, whatever happened
        # to the one it had: else its next user would read inside an old snapshot.
        options: dict[str, Any] = dict(pool_size=16, max_overflow=48, pool_timeout=10,
                                       pool_recycle=3600, pool_reset_on_return="rollback")
        # The write transaction's settings (see the module docstring).
        self._write_options: dict[str, Any] = {}
        if self._dialect == "sqlite":
            options["connect_args"] = {"check_same_thread": False, "timeout": 10}
            self._write_options = {"sqlite_begin": "BEGIN IMMEDIATE"}
        else:
            options["isolation_level"] = "REPEATABLE READ"
            if self._dialect == "postgresql":
                self._write_options = {"isolation_level": "READ COMMITTED"}
            else:
                options["connect_args"] = {name: seconds for name, seconds in
                                           MYSQL_TIMEOUTS.items() if name not in sa_url.query}
        try:
            self._sa = sa.create_engine(sa_url, **options)
        except (sa_exc.SQLAlchemyError, ImportError) as exc:
            raise EngineUnavailable(f"{url}: {exc}") from exc
        # The nodes commits go through (commit_via), their pools made on first use.
        self._commit_urls = [sa_url.set(host=host, port=port) for host, port in commit_nodes]
        self._commit_pools: dict[int, sa.Engine] = {}
        self._pool_options = options
        self._committer_lock = threading.Lock()
        self._committer_at, self._committer_since = 0, time.monotonic()
        if self._dialect == "sqlite":
            _sqlite_transactions(self._sa)
        elif self._dialect in ("mysql", "mariadb"):
            _galera_causal_reads(self._sa)
        self._upsert = _upsert(self._dialect)
        self._group = _GroupCommit(self._commit_batch)
        self._commits = CommitSignal()
        self._open_txns = OpenTransactions()
        try:
            self._init_table(create)
        except BaseException:
            self._sa.dispose()
            raise

    def _init_table(self, create: bool) -> None:
        """Create the table (only if `create`: else its absence is NotFormatted) and the
        sequence row, unless another process already has."""
        if create:
            try:
                _metadata.create_all(self._sa, checkfirst=True)
            except sa_exc.SQLAlchemyError:
                pass    # a concurrent creator won the race; the checks below tell
        else:
            try:
                exists = sa.inspect(self._sa).has_table(KV.name)
            except sa_exc.SQLAlchemyError as exc:
                raise classify(exc) from exc
            if not exists:
                raise NotFormatted(self.url)
        conn, _ = self._connect(read_seq=False)
        with _pooled(conn):
            if _run(conn, _READ_SEQ).first() is None:
                # A table filled by other means (a load) resumes after its newest record.
                newest = _run(conn, _SCAN_DESC, {"lo": CHANGELOG_PREFIX, "hi": CHANGELOG_END,
                                                 "n": 1}).first()
                seq = changelog_seq(newest[0]) if newest else 0
                try:
                    conn.execute(sa.insert(KV), {"k": SEQ_KEY, "v": seq.to_bytes(8, "big")})
                    conn.commit()
                except sa_exc.IntegrityError:
                    pass    # another process inserted it first
                except sa_exc.SQLAlchemyError as exc:
                    raise classify(exc) from exc

    # --- connections --------------------------------------------------------------------
    def _connect(self, read_seq: bool = True) -> tuple[sa.Connection, int]:
        """A pooled connection in a new snapshot, and the change sequence it shows.

        The sequence read is the snapshot's first statement. If it finds the pooled
        connection dead (a database restart), nothing was read yet: take a fresh one.
        SQLAlchemy then invalidates the rest of the pool too."""
        for attempt in range(2):
            try:
                conn = self._sa.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise classify(exc) from exc
            try:
                return conn, decode_seq(conn.execute(_READ_SEQ).scalar()) if read_seq else 0
            except sa_exc.DBAPIError as exc:
                _discard(conn)
                if attempt or not exc.connection_invalidated:
                    raise classify(exc) from exc
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _committing(self, own: sa.Connection | None) -> Iterator[sa.Connection]:
        """The connection a write transaction runs on: `own` (a snapshot's, ended) or a
        new local one; with commit_via, one to the node in charge, which hands the role
        on when it fails (its being outside the cluster is then plain unavailability:
        the next node may take the commit)."""
        at = self._committer() if self._commit_urls else None
        if at is None or self._is_local(at):
            if own is not None:
                yield own
                return
            conn, _ = self._connect(read_seq=False)
            with _pooled(conn):
                yield conn
            return
        try:
            try:
                conn = self._commit_pool(at).connect()
            except sa_exc.SQLAlchemyError as exc:
                raise classify(exc) from exc
            with _pooled(conn):
                yield conn
        except OutOfCluster as exc:
            self._hand_on(at, exc)
            raise EngineUnavailable(str(exc)) from exc
        except (EngineUnavailable, CommitUnknown) as exc:
            self._hand_on(at, exc)
            raise

    def _is_local(self, at: int) -> bool:
        """The commit node is the one snapshots are read from: its connection will do."""
        url, here = self._commit_urls[at], self._sa.url
        return (url.host, url.port or 3306) == (here.host, here.port or 3306)

    def _commit_pool(self, at: int) -> sa.Engine:
        with self._committer_lock:
            if at not in self._commit_pools:
                pool = sa.create_engine(self._commit_urls[at], **self._pool_options)
                _galera_causal_reads(pool)
                self._commit_pools[at] = pool
            return self._commit_pools[at]

    def _committer(self) -> int:
        """The commit_via node in charge: the first one, unless it failed lately."""
        with self._committer_lock:
            if self._committer_at and \
                    time.monotonic() - self._committer_since > PREFERRED_AGAIN_S:
                self._committer_at = 0
            return self._committer_at

    def _hand_on(self, at: int, why: BaseException) -> None:
        with self._committer_lock:
            if self._committer_at == at:
                self._committer_at = (at + 1) % len(self._commit_urls)
                self._committer_since = time.monotonic()
                nxt = self._commit_urls[self._committer_at]
                log.warning("commits through %s:%s failed (%s); next: %s:%s",
                            self._commit_urls[at].host, self._commit_urls[at].port, why,
                            nxt.host, nxt.port)

    def _lock_seq(self, conn: sa.Connection) -> int:
        """Open the write transaction: lock the sequence row, return the newest seq."""
        conn.execution_options(**self._write_options)
        return decode_seq(_run(conn, _LOCK_SEQ).scalar())

    # --- Engine -------------------------------------------------------------------------
    def active_transactions(self) -> int:
        return self._open_txns.count

    def begin(self) -> Txn:
        return self._open(read_only=False)

    def snapshot(self) -> Txn:
        return self._open(read_only=True)

    def _open(self, read_only: bool) -> OccTxn:
        conn, start = self._connect()
        return OccTxn(_Reader(conn), start, read_only, self._commit, self._release,
                      counter=self._open_txns)

    @staticmethod
    def _release(txn: OccTxn) -> None:
        _close(txn.reader.conn)     # which rolls back what is open

    def _commit(self, txn: OccTxn, header: bytes, wait_durable: bool) -> int | None:
        with _pooled(txn.reader.conn) as conn:
            if not txn.writes:
                return None
            _end(conn)      # the snapshot; nothing was written in it
            seq = self._group.commit(_Pending(txn, header), conn)
        self._commits.committed(seq)
        return seq

    def _commit_batch(self, batch: list[_Pending], own: sa.Connection) -> None:
        """One write transaction for the commits of many threads: they validate in
        queue order (against the stored log, then against the ones accepted before
        them), take consecutive sequences, and share one COMMIT (one log sync)."""
        with self._committing(own) as conn:
            self._write_batch(batch, conn)

    def _write_batch(self, batch: list[_Pending], conn: sa.Connection) -> None:
        seq = newest = self._lock_seq(conn)
        oldest = min(p.txn.start for p in batch)
        stored = _run(conn, _LOCKED_RANGE, {    # a locking read: it sees the newest records
            "lo": changelog_key(oldest + 1), "hi": changelog_key(newest + 1)}).scalars().all() \
            if newest > oldest else []
        writes: dict[bytes, bytes | None] = {}
        accepted: list[_Pending] = []
        for p in batch:
            need = newest - p.txn.start     # the newest records; older ones may be trimmed
            try:
                check_change_log(p.txn, newest, stored[max(0, len(stored) - need):] if need else [])
                check_conflicts(p.txn, [a.txn.writes for a in accepted])
            except TxnConflict as exc:
                p.error = exc
                continue
            seq += 1
            p.seq = seq
            accepted.append(p)
            log_commit(writes, p.txn, seq, p.header)
        if not accepted:
            return
        deleted = [k for k, v in writes.items() if v is None]
        if deleted:
            _run(conn, _DELETE_KEYS, {"keys": deleted})
        _run(conn, self._upsert, [{"k": k, "v": v} for k, v in writes.items() if v is not None])
        _end(conn, committing=True)

    def snapshot_scan(self, start: bytes, end: bytes) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
        conn, seq = self._connect()
        return seq, _stream(conn, start, end)

    def wait_durable(self) -> None:
        """Nothing to wait for: a SQL commit is durable when COMMIT returns."""

    def last_seq(self) -> int:
        conn, seq = self._connect()
        _close(conn)
        return seq

    def wait_for_commit(self, after_seq: int, timeout: float) -> int:
        return poll_for_commit(self, self._commits, after_seq, timeout)

    def trim_changes(self, keep: int) -> int:
        """Deletes in chunks, each its own short transaction under the sequence lock."""
        dropped = 0
        while True:
            with self._committing(None) as conn:
                newest = self._lock_seq(conn)
                oldest = _run(conn, _SCAN, {"lo": CHANGELOG_PREFIX, "hi": CHANGELOG_END,
                                            "n": 1}).first()
                span = trim_span(newest, keep, changelog_seq(oldest[0]) if oldest else None)
                if span is None:
                    return dropped
                first, stop = span
                _run(conn, _DELETE_RANGE, {"lo": changelog_key(first), "hi": changelog_key(stop)})
                _end(conn, committing=True)
                dropped += stop - first

    def disk_usage(self) -> int | None:
        query = _SIZE_QUERIES.get(self._dialect)
        if query is None:
            return None
        conn, _ = self._connect(read_seq=False)
        with _pooled(conn):
            value = _run(conn, sa.text(query)).scalar()
        return None if value is None else int(value)

    def close(self) -> None:
        self._sa.dispose()
        for pool in self._commit_pools.values():
            pool.dispose()


@dataclass
class _Pending:
    """A commit waiting for its batch: what to write, then how it went."""
    txn: OccTxn
    header: bytes
    seq: int | None = None
    error: BaseException | None = None
    done: bool = False


class _GroupCommit:
    """Batches concurrent commits: the first waiting thread leads, taking everything
    queued into one write transaction on its connection; the others wait for their
    result. While a batch commits, the next one queues up behind it."""

    def __init__(self, commit_batch: Callable[[list[_Pending], sa.Connection], None]) -> None:
        self._commit_batch = commit_batch
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._leading = False

    def commit(self, pending: _Pending, conn: sa.Connection) -> int:
        with self._cond:
            self._queue.append(pending)
            while self._leading and not pending.done:
                self._cond.wait()
            if not pending.done:
                self._leading = True
                batch, self._queue = self._queue, []
        if not pending.done:
            try:
                self._commit_batch(batch, conn)
            except BaseException as exc:
                for p in batch:
                    if p.error is None:
                        p.error = exc
            finally:
                with self._cond:
                    for p in batch:
                        p.done = True
                    self._leading = False
                    self._cond.notify_all()
        if pending.error is not None:
            raise pending.error
        return pending.seq


def _stream(conn: sa.Connection, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
    """snapshot_scan's rows: pages from the pinned snapshot, then the connection back."""
    with _pooled(conn):
        yield from _Reader(conn).scan(start, end, reverse=False, page=_MAX_PAGE)


def _commit_nodes(url: sa.URL) -> list[tuple[str, int]]:
    """The URL's commit_via list, as (host, port) pairs (port 3306 when not given)."""
    values = url.query.get(COMMIT_VIA)
    if values is None:
        return []
    text = ",".join([values] if isinstance(values, str) else values)
    nodes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "3306")
        if not host or not port.isdigit():
            raise BadEngineUrl(f"{COMMIT_VIA}: {item!r} is not HOST:PORT")
        nodes.append((host, int(port)))
    if not nodes:
        raise BadEngineUrl(f"{COMMIT_VIA} names no node")
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise BadEngineUrl(f"{COMMIT_VIA} is for MySQL-protocol clusters (Galera)")
    return nodes


def _driver_url(url: str) -> str:
    """Bare scheme names pick the default driver: PyMySQL, psycopg (3)."""
    scheme, sep, rest = url.partition("://")
    default = {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql",
               "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
    return default.get(scheme, scheme) + sep + rest


def _sqlite_transactions(engine: sa.Engine) -> None:
    """SQLite as the design needs it. pysqlite's own transaction handling starts no
    transaction for a SELECT (so no snapshot); we issue BEGIN ourselves. WAL lets
    snapshots read while a writer commits; synchronous=FULL makes COMMIT durable."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def _galera_causal_reads(engine: sa.Engine) -> None:
    """On a Galera node, causal reads on every connection: each read first waits until
    the node has applied every commit the cluster had when it was sent. Without it a
    node serves reads from before commits acknowledged by other nodes (by ~6 s after a
    pause). Asked per connection, so no URL needs to say it."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
            row = cursor.fetchone()
            if row is not None and row[1] == "ON":
                cursor.execute("SET SESSION wsrep_sync_wait = 1")
        finally:
            cursor.close()
