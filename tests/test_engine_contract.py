"""The KV contract, run against every engine driver."""

from __future__ import annotations

import threading

import pytest

from engines import changelog, occ, transactional
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX, ReadOnlyTxn, TxnConflict


def put_all(engine, pairs):
    txn = engine.begin()
    for k, v in pairs.items():
        txn.put(k, v)
    return txn.commit(b"hdr")


def test_get_put_delete_and_read_your_writes(engine):
    put_all(engine, {b"a": b"1", b"b": b"2"})
    txn = engine.begin()
    assert txn.get(b"a") == b"1"
    txn.put(b"a", b"x")
    txn.delete(b"b")
    assert txn.get(b"a") == b"x" and txn.get(b"b") is None
    assert txn.get_many([b"a", b"b", b"zz"]) == [b"x", None, None]
    txn.commit()
    snap = engine.snapshot()
    assert snap.get_many([b"a", b"b"]) == [b"x", None]
    snap.commit()


def test_rollback_discards(engine):
    put_all(engine, {b"k": b"v"})
    txn = engine.begin()
    txn.put(b"k", b"other")
    txn.rollback()
    snap = engine.snapshot()
    assert snap.get(b"k") == b"v"
    snap.rollback()


def test_scan_order_limit_reverse_merges_own_writes(engine):
    put_all(engine, {b"p%02d" % i: b"%d" % i for i in range(0, 20, 2)})
    txn = engine.begin()
    txn.put(b"p05", b"new")
    txn.delete(b"p06")
    keys = [k for k, _ in txn.scan(b"p", b"q")]
    assert keys == [b"p00", b"p02", b"p04", b"p05", b"p08", b"p10", b"p12", b"p14", b"p16", b"p18"]
    assert [k for k, _ in txn.scan(b"p", b"q", limit=3)] == [b"p00", b"p02", b"p04"]
    assert [k for k, _ in txn.scan(b"p03", b"p12", reverse=True)] == [b"p10", b"p08", b"p05", b"p04"]
    assert [k for k, _ in txn.scan(b"p", b"q", limit=2, reverse=True)] == [b"p18", b"p16"]
    assert list(txn.scan(b"x", b"y")) == []
    txn.rollback()


def test_snapshot_refuses_writes(engine):
    snap = engine.snapshot()
    with pytest.raises(ReadOnlyTxn):
        snap.put(b"a", b"b")
    snap.rollback()


def test_write_conflict_on_read_key(engine):
    put_all(engine, {b"n": b"0"})
    t1, t2 = engine.begin(), engine.begin()
    for t in (t1, t2):
        t.put(b"n", b"%d" % (int(t.get(b"n")) + 1))
    t1.commit()
    with pytest.raises(TxnConflict):
        t2.commit()


def test_write_skew_on_two_keys_conflicts(engine):
    """Both read x and y and each sets one of them to 0 (the two on-call doctors):
    snapshot isolation would commit both; a serializable engine refuses the second."""
    put_all(engine, {b"x": b"1", b"y": b"1"})
    t1, t2 = engine.begin(), engine.begin()
    for txn, key in ((t1, b"x"), (t2, b"y")):
        assert txn.get_many([b"x", b"y"]) == [b"1", b"1"]
        txn.put(key, b"0")
    t1.commit()
    with pytest.raises(TxnConflict):
        t2.commit()


def test_phantom_in_scanned_range_conflicts(engine):
    """Write skew through a range: both check a directory is empty, both insert."""
    t1, t2 = engine.begin(), engine.begin()
    assert list(t1.scan(b"d/", b"d0")) == [] and list(t2.scan(b"d/", b"d0")) == []
    t1.put(b"d/x", b"1")
    t2.put(b"d/y", b"1")
    t1.commit()
    with pytest.raises(TxnConflict):
        t2.commit()


def test_scan_range_only_covers_what_was_returned(engine):
    put_all(engine, {b"d/a": b"1", b"d/b": b"1", b"d/c": b"1"})
    reader = engine.begin()
    assert [k for k, _ in reader.scan(b"d/", b"d0", limit=1)] == [b"d/a"]
    put_all(engine, {b"d/z": b"1"})        # beyond the page: no conflict
    reader.put(b"other", b"1")
    reader.commit()


def test_read_only_snapshot_detects_torn_read(engine):
    put_all(engine, {b"a": b"1", b"b": b"1"})
    snap = engine.snapshot()
    assert snap.get(b"a") == b"1"
    put_all(engine, {b"a": b"2", b"b": b"2"})
    if snap.get(b"b") == b"2":              # a mix of two states (engines without MVCC) ...
        with pytest.raises(TxnConflict):    # ... is refused at commit
            snap.commit()
    else:                                   # an MVCC snapshot shows one state throughout
        assert snap.get_many([b"a", b"b"]) == [b"1", b"1"]
        assert snap.commit() is None


def test_change_log_gap_free_commit_order(engine):
    base = engine.last_seq()
    seqs = [put_all(engine, {b"k%d" % i: b"v"}) for i in range(5)]
    assert seqs == list(range(base + 1, base + 6))
    ro = engine.snapshot()
    assert ro.get(b"k1") == b"v"
    assert ro.commit() is None
    assert engine.last_seq() == base + 5
    snap = engine.snapshot()
    records = [changelog.decode(v) for _, v in snap.scan(CHANGELOG_PREFIX, CHANGELOG_END)]
    snap.rollback()
    assert [r.seq for r in records] == seqs
    assert records[2].header == b"hdr" and records[2].writes == ((b"k2", b"v"),)


def test_trim_changes_keeps_newest(engine):
    for i in range(10):
        put_all(engine, {b"k%d" % i: b"v"})
    last = engine.last_seq()
    assert engine.trim_changes(keep=3) == last - 3
    snap = engine.snapshot()
    seqs = [changelog.decode(v).seq for _, v in snap.scan(CHANGELOG_PREFIX, CHANGELOG_END)]
    snap.rollback()
    assert seqs == [last - 2, last - 1, last]


def test_concurrent_increments_are_serializable(engine):
    """Lost updates are impossible: N threads x M retried increments == N*M."""
    put_all(engine, {b"ctr": b"0"})

    def worker():
        for _ in range(50):
            while True:
                txn = engine.begin()
                txn.put(b"ctr", b"%d" % (int(txn.get(b"ctr")) + 1))
                try:
                    txn.commit()
                    break
                except TxnConflict:
                    continue

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = engine.snapshot()
    assert snap.get(b"ctr") == b"200"
    snap.rollback()


def _finishes(fn, seconds: float = 20) -> bool:
    """Run fn in a thread; whether it returned within `seconds`."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_a_long_transaction_delays_the_others_only_for_a_while(engine, monkeypatch):
    """Transactions take turns on an in-process store, but one that holds its turn for
    long (a tree walk) does not stop the others: they run after TURN_WAIT_S."""
    monkeypatch.setattr(occ, "TURN_WAIT_S", 0.05)
    holding, other_done = threading.Event(), threading.Event()

    def long_one(txn):
        txn.put(b"long", b"1")
        holding.set()
        assert other_done.wait(20), "the other transaction waited for this one to end"

    def other():
        holding.wait(20)
        transactional.run(engine, lambda txn: txn.put(b"other", b"1"))
        other_done.set()

    helper = threading.Thread(target=other, daemon=True)
    helper.start()
    assert _finishes(lambda: transactional.run(engine, long_one), 30)
    helper.join(5)
    assert other_done.is_set()


def test_a_turn_ends_before_the_log_sync_and_passes_through_nesting(engine, monkeypatch):
    """With turns that never time out: a transaction nested in another (an id
    reservation inside a create) runs at once, and a durable commit lets the next
    transaction run while it waits for the log sync."""
    monkeypatch.setattr(occ, "TURN_WAIT_S", 600)
    nested = lambda txn: transactional.run(engine, lambda inner: inner.put(b"in", b"1"),
                                           wait_durable=False)
    assert _finishes(lambda: transactional.run(engine, lambda txn: (txn.put(b"out", b"1"),
                                                                    nested(txn))))
    if not isinstance(engine, occ.OccEngine):
        return
    syncing, release = threading.Event(), threading.Event()
    sync = engine._sync

    def slow_sync():
        syncing.set()
        release.wait(20)
        sync()

    monkeypatch.setattr(engine, "_sync", slow_sync)
    durable = threading.Thread(target=lambda: transactional.run(
        engine, lambda txn: txn.put(b"durable", b"1")), daemon=True)
    durable.start()
    assert syncing.wait(20)
    try:
        assert _finishes(lambda: transactional.run(engine, lambda txn: txn.put(b"next", b"1"),
                                                   wait_durable=False))
    finally:
        release.set()
        durable.join(20)


def test_rocksdb_persists_across_reopen(tmp_path):
    from engines import open_engine
    url = f"rocksdb://{tmp_path}/db"
    eng = open_engine(url, create=True)
    put_all(eng, {b"a": b"1"})
    seq = eng.last_seq()
    eng.close()
    eng = open_engine(url)
    snap = eng.snapshot()
    assert snap.get(b"a") == b"1"
    snap.rollback()
    assert eng.last_seq() == seq
    assert put_all(eng, {b"b": b"2"}) == seq + 1
    eng.close()


def test_snapshot_scan_is_point_in_time_and_names_its_seq(engine):
    put_all(engine, {b"s/%03d" % i: b"old" for i in range(300)})
    seq, rows = engine.snapshot_scan(b"s/", b"s0")
    first = next(rows)
    put_all(engine, {b"s/%03d" % i: b"new" for i in range(300)})   # after the scan began
    put_all(engine, {b"s/999": b"new"})
    rest = list(rows)
    assert seq == engine.last_seq() - 2
    assert [first] + rest == [(b"s/%03d" % i, b"old") for i in range(300)]
