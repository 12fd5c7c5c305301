"""What the SQL engine adds to the contract: why its commit validation is needed, the
change log across several processes' writers (also on TiKV, the other shared store),
error classification, and a MariaDB killed and restarted under load."""

from __future__ import annotations

import sqlite3
import threading
import time

import pymysql
import pytest
import sqlalchemy as sa

from engines import changelog, open_engine
from engines import sql as sqlmod
from engines.contract import (CHANGELOG_END, CHANGELOG_PREFIX, CommitUnknown, EngineError,
                              EngineUnavailable, OutOfCluster, TxnConflict)

from conftest import free_port, fresh_engine_url

pytestmark = pytest.mark.timeout(240)
SQL_ENGINES = ["sqlite", "mariadb", "postgres"]
SHARED_STORES = SQL_ENGINES + ["tikv"]      # stores several metaservers can share
MVCC_SERVERS = ["mariadb", "postgres"]     # REPEATABLE READ snapshots over the network


@pytest.fixture(params=SQL_ENGINES)
def url(request, tmp_path):
    return fresh_engine_url(request, request.param, tmp_path)


@pytest.fixture(params=SHARED_STORES)
def shared_url(request, tmp_path):
    return fresh_engine_url(request, request.param, tmp_path)


@pytest.fixture(params=MVCC_SERVERS)
def server_url(request, tmp_path):
    return fresh_engine_url(request, request.param, tmp_path)


@pytest.fixture
def mariadb_url(request, tmp_path):
    return fresh_engine_url(request, "mariadb", tmp_path)


@pytest.fixture
def unvalidated(monkeypatch):
    """The engine with its commit validation switched off: plain REPEATABLE READ."""
    monkeypatch.setattr(sqlmod, "check_change_log", lambda txn, seq, records: None)


def commit_retrying(engine, body, deadline: float) -> int:
    """Run body(txn) in transactions until one commits; returns its sequence."""
    while time.monotonic() < deadline:
        txn = engine.begin()
        try:
            body(txn)
            return txn.commit(b"t")
        except TxnConflict:
            continue
    raise AssertionError("no commit before the deadline")


def increment(txn, key=b"ctr"):
    txn.put(key, b"%d" % (int(txn.get(key) or b"0") + 1))


# --- REPEATABLE READ alone is not enough: these fail without the validation ----------

def commit_both(first, second) -> bool:
    """Commit first, then second; whether the second was refused."""
    first.commit()
    try:
        second.commit()
        return False
    except TxnConflict:
        return True


def lost_update(engine) -> tuple[bool, bytes]:
    """Two overlapping increments on separate connections: (second refused?, final)."""
    first, second = engine.begin(), engine.begin()
    increment(first)
    increment(second)
    refused = commit_both(first, second)
    snap = engine.snapshot()
    final = snap.get(b"ctr")
    snap.rollback()
    return refused, final


def write_skew(engine) -> tuple[bool, list]:
    """Both check that a range is empty, each inserts into it: (second refused?, rows)."""
    first, second = engine.begin(), engine.begin()
    for txn, key in ((first, b"d/x"), (second, b"d/y")):
        assert list(txn.scan(b"d/", b"d0")) == []
        txn.put(key, b"1")
    refused = commit_both(first, second)
    snap = engine.snapshot()
    rows = list(snap.scan(b"d/", b"d0"))
    snap.rollback()
    return refused, rows


@pytest.mark.parametrize("anomaly", [lost_update, write_skew])
def test_repeatable_read_alone_allows_the_anomaly(server_url, unvalidated, anomaly):
    engine = open_engine(server_url, create=True)
    try:
        refused, result = anomaly(engine)
    finally:
        engine.close()
    assert not refused
    assert result in (b"1", [(b"d/x", b"1"), (b"d/y", b"1")])     # an update lost / skew


@pytest.mark.parametrize("anomaly", [lost_update, write_skew])
def test_commit_validation_prevents_the_anomaly(url, anomaly):
    engine = open_engine(url, create=True)
    try:
        refused, result = anomaly(engine)
    finally:
        engine.close()
    assert refused
    assert result in (b"1", [(b"d/x", b"1")])      # only the first commit's effect


# --- the change log with several writer processes -----------------------------------

def test_change_log_gap_free_in_commit_order_across_engine_instances(shared_url):
    """Writer threads on two engine instances (as two metaservers would be; threads of
    one instance share its group commits) contend on a shared counter and write keys
    of their own. Sequences are unique and gap-free, and replaying the change records
    in sequence order rebuilds exactly the stored state: the order is the commit order."""
    writers, commits = 6, 20
    instances = [open_engine(shared_url, create=True) for _ in range(2)]
    engines = [instances[i % 2] for i in range(writers)]
    seqs: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 120

    def work(index: int) -> None:
        for i in range(commits):
            def body(txn):
                increment(txn)
                txn.put(b"w%d/%d" % (index, i), b"%d" % i)
                if i % 5 == 4:
                    txn.delete(b"w%d/%d" % (index, i - 1))
            seq = commit_retrying(engines[index], body, deadline)
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(seqs) == list(range(1, writers * commits + 1))
        seq, rows = engines[0].snapshot_scan(b"", b"\xff\xff")
        stored, records = {}, []
        for key, value in rows:
            if key.startswith(CHANGELOG_PREFIX):
                records.append(changelog.decode(value))
            else:
                stored[key] = value
        assert seq == writers * commits == engines[1].last_seq()
        assert [r.seq for r in records] == list(range(1, seq + 1))
        replayed: dict[bytes, bytes] = {}
        for record in records:
            for key, value in record.writes:
                if value is None:
                    replayed.pop(key, None)
                else:
                    replayed[key] = value
        assert replayed == stored
        assert stored[b"ctr"] == b"%d" % (writers * commits)
    finally:
        for engine in instances:
            engine.close()


def test_trimmed_records_make_an_old_transaction_conflict(shared_url):
    engine = open_engine(shared_url, create=True)
    try:
        old = engine.begin()
        old.get(b"k")
        for i in range(3):
            commit_retrying(engine, lambda txn: txn.put(b"other%d" % i, b"v"),
                            time.monotonic() + 30)
        assert engine.trim_changes(keep=1) == 2
        old.put(b"k", b"v")
        with pytest.raises(TxnConflict, match="trimmed"):
            old.commit()
    finally:
        engine.close()


def test_reopen_keeps_data_and_sequence_and_rebuilds_a_missing_sequence_row(url):
    engine = open_engine(url, create=True)
    for i in range(3):
        commit_retrying(engine, lambda txn: txn.put(b"k%d" % i, b"v"), time.monotonic() + 30)
    engine.close()
    raw = sa.create_engine(sqlmod._driver_url(url))
    with raw.begin() as conn:      # as a load that wrote rows and records might leave it
        conn.execute(sa.delete(sqlmod.KV).where(sqlmod.KV.c.k == sqlmod.SEQ_KEY))
    raw.dispose()
    engine = open_engine(url)
    try:
        assert engine.last_seq() == 3
        snap = engine.snapshot()
        assert snap.get_many([b"k0", b"k2"]) == [b"v", b"v"]
        snap.rollback()
        assert commit_retrying(engine, increment, time.monotonic() + 30) == 4
    finally:
        engine.close()


def test_directory_listing_is_a_primary_key_range_scan(mariadb_url):
    engine = open_engine(mariadb_url, create=True)
    try:
        for d in (b"D1/", b"D2/", b"D3/"):
            commit_retrying(engine, lambda txn: [txn.put(d + b"%04d" % i, b"e") for i in range(300)],
                            time.monotonic() + 30)
        query = str(sqlmod._SCAN.compile(dialect=engine._sa.dialect))
        with engine._sa.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN " + query,
                                        {"lo": b"D2/", "hi": b"D20", "n": 100}).mappings().one()
        assert (plan["table"], plan["type"], plan["key"]) == ("kv", "range", "PRIMARY")
        assert "filesort" not in (plan["Extra"] or "")      # rows come in key order
    finally:
        engine.close()


@pytest.mark.parametrize("name", ["sqlite", "mariadb"])
def test_a_batch_of_reads_is_two_selects_not_one_per_key(name, request, tmp_path):
    """Runner.call_many's read group fetches the entries, then the attributes, each in
    one SELECT ... IN: 2 statements for 50 lookups + 50 getattrs, not 150."""
    from metaserver.runner import Runner
    from conftest import formatted
    engine = formatted(open_engine(fresh_engine_url(request, name, tmp_path), create=True))
    try:
        runner = Runner(engine)
        made = runner.call_many([("create", b"", {"parent": 1, "name": b"f%d" % i,
                                                  "mode": 0o644, "uid": 0, "gid": 0})
                                 for i in range(50)])
        statements: list[str] = []
        sa.event.listen(engine._sa, "before_cursor_execute",
                        lambda conn, cursor, stmt, *rest: statements.append(stmt))
        reads = [("lookup", b"", {"parent": 1, "name": b"f%d" % i}) for i in range(50)]
        reads += [("getattr", b"", {"ino": e.ino}) for e in made]
        reads += [("lookup", b"", {"parent": 1, "name": b"missing"})]
        results = runner.call_many(reads)
        assert [r.ino for r in results[:50]] == [e.ino for e in made]
        assert [r.ino for r in results[50:100]] == [e.ino for e in made]
        assert isinstance(results[100], FileNotFoundError) or results[100].errno == 2
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert 2 <= len(selects) <= 4, selects      # the sequence row, entries, attributes
    finally:
        engine.close()


# --- one place classifies errors ------------------------------------------------------

def dbapi(orig) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("statement", {}, orig)


@pytest.mark.parametrize("orig, committing, expected", [
    (pymysql.err.OperationalError(1213, "Deadlock found"), False, TxnConflict),
    (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), False, EngineUnavailable),
    (pymysql.err.OperationalError(1180, "Got error 6 during COMMIT"), True, CommitUnknown),
    (pymysql.err.OperationalError(1047, "WSREP has not yet prepared node"), False, OutOfCluster),
    (pymysql.err.OperationalError(1047, "WSREP has not yet prepared node"), True, CommitUnknown),
    (pymysql.err.OperationalError(2006, "MySQL server has gone away"), False, EngineUnavailable),
    (pymysql.err.OperationalError(2013, "Lost connection during query"), False, EngineUnavailable),
    (pymysql.err.OperationalError(2013, "Lost connection during query"), True, CommitUnknown),
    (pymysql.err.OperationalError(2003, "Can't connect"), False, EngineUnavailable),
    (sqlite3.OperationalError("database is locked"), False, None),   # code set below
])
def test_classify(orig, committing, expected):
    if isinstance(orig, sqlite3.OperationalError):
        orig.sqlite_errorcode, expected = sqlite3.SQLITE_BUSY, TxnConflict
    assert type(sqlmod.classify(dbapi(orig), committing)) is expected


def test_classify_duplicate_key_and_serialization_failure():
    duplicate = sa.exc.IntegrityError("INSERT", {}, pymysql.err.IntegrityError(1062, "Duplicate"))
    assert isinstance(sqlmod.classify(duplicate), TxnConflict)

    class SerializationFailure(Exception):
        sqlstate = "40001"
    assert isinstance(sqlmod.classify(dbapi(SerializationFailure()), True), TxnConflict)


def test_tikv_without_a_reachable_pd_is_unavailable():
    pytest.importorskip("tikv_client")
    with pytest.raises(EngineUnavailable, match="TiKV"):
        open_engine(f"tikv://127.0.0.1:{free_port()}/x")


# --- MariaDB killed and restarted under load ------------------------------------------

def test_mariadb_killed_and_restarted_under_load(mariadb_server, mariadb_url):
    """Every transaction adds one key and bumps a counter. Across a SIGKILL and restart
    of the server, callers see only contract errors, every acknowledged commit is
    there, no transaction is half-applied, and the same engine object works again."""
    if not mariadb_server.private:
        pytest.skip("METASERVER_TEST_MYSQL_URL names a server this test must not kill")
    engine = open_engine(mariadb_url, create=True)
    acked: list[bytes] = []
    errors: list[EngineError] = []
    stop = threading.Event()
    deadline = time.monotonic() + 90

    def load(worker: int) -> None:
        for i in range(100_000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            key = b"load/%d/%d" % (worker, i)
            try:
                with engine.begin() as txn:
                    txn.put(key, b"1")
                    increment(txn)
                    txn.commit(b"load")
                acked.append(key)
            except EngineError as exc:      # anything else fails the thread, and the test
                errors.append(exc)
                time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: len(acked) >= 50, deadline)
        mariadb_server.kill()
        _wait_for(lambda: len(errors) >= 3, deadline)
        mariadb_server.start()
        before = len(acked)
        _wait_for(lambda: len(acked) >= before + 50, deadline)   # the same engine recovered
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(isinstance(e, (EngineUnavailable, CommitUnknown, TxnConflict)) for e in errors)
    assert any(isinstance(e, EngineUnavailable) for e in errors)
    try:
        _, rows = engine.snapshot_scan(b"", b"\xff\xff")
        stored = dict(rows)
        keys = {k for k in stored if k.startswith(b"load/")}
        assert set(acked) <= keys                      # nothing acknowledged was lost
        assert stored[b"ctr"] == b"%d" % len(keys)     # each transaction whole or absent
        records = [k for k in stored if CHANGELOG_PREFIX <= k < CHANGELOG_END]
        assert len(records) == engine.last_seq() == len(keys)
    finally:
        engine.close()


def _wait_for(condition, deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline, "the load made no progress in time"
        time.sleep(0.05)


# --- a database that stops answering ----------------------------------------------------

def test_a_database_that_stops_answering_fails_the_statement_instead_of_hanging(mariadb_url):
    """Through a proxy that holds every byte (a paused or partitioned-away MariaDB), a
    transaction fails with a contract error once the URL's read_timeout passes, instead
    of holding its thread for ever; when the database answers again, so does the engine.
    Without a timeout in the URL, MYSQL_TIMEOUTS applies."""
    from jepsen.faultproxy import FaultProxy

    direct = sa.make_url(mariadb_url)
    proxy = FaultProxy(free_port(), f"{direct.host}:{direct.port}").start()
    url = direct.set(port=proxy.listen_port).update_query_dict({"read_timeout": "2"})
    engine = open_engine(url.render_as_string(hide_password=False), create=True)
    outcome: list = []

    def read() -> None:
        try:
            with engine.snapshot() as txn:
                outcome.append(txn.get(b"k"))
                txn.commit()
        except EngineError as exc:
            outcome.append(exc)

    try:
        with engine.begin() as txn:
            txn.put(b"k", b"v")
            txn.commit(b"t")
        proxy.set(blackhole=True)
        thread = threading.Thread(target=read, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the read waited on a silent database for a minute"
        assert isinstance(outcome[0], (EngineUnavailable, CommitUnknown)), outcome
        assert time.monotonic() - started < 30
        proxy.clear()
        proxy.reset()
        outcome.clear()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and outcome[-1:] != [b"v"]:
            read()
        assert outcome[-1] == b"v"
    finally:
        proxy.clear()
        engine.close()
        proxy.stop()
    plain = open_engine(mariadb_url)
    try:
        assert plain._pool_options["connect_args"] == sqlmod.MYSQL_TIMEOUTS
    finally:
        plain.close()
