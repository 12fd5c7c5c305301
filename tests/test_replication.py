"""Replication: the primary's stream from any position, follower bootstrap and apply,
forwarded writes, link faults through the fault proxy, kill -9 and restarts."""

from __future__ import annotations

import errno
import os
import pathlib
import sys
import threading
import time

import grpc
import pytest

from conftest import format_url, free_port
from engines import changelog, open_engine
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen.faultproxy import FaultProxy  # noqa: E402
from metaserver.client import Client, RetryPolicy
from metaserver.service import BATCH_INDEX_KEY, ERRNO_KEY, ServerConfig, start
from metaserver import replication
from metaserver.service.follower import (APPLIED_SEQ_END_KEY, APPLIED_SEQ_KEY, COMMIT_SEQ_KEY,
                                         MIN_SEQ_KEY)
from metaserver.testing.metaserver_process import ServerProcess, namespace, status, wait_for
from metaserver.types import ROOT_INO
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc

NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture
def primary():
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", changelog_keep=1000))
    yield srv
    srv.stop()


def follower_of(address: str, meta_url: str = "memory://"):
    return start(ServerConfig(meta_url=meta_url, listen="127.0.0.1:0", follow=address))


def caught_up(follower, primary_engine) -> bool:
    return follower.node.follower.applied >= primary_engine.last_seq()


def test_stream_from_any_position(primary):
    with Client(primary.address) as c:
        for i in range(20):
            c.mkdir(ROOT_INO, f"d{i}")
    last = primary.engine.last_seq()
    with grpc.insecure_channel(primary.address) as channel:
        stub = replication_pb2_grpc.ReplicationStub(channel)
        for start_at in (1, 7, last):
            stream = stub.Stream(rpb.StreamRequest(from_seq=start_at, epoch=1))
            seqs = []
            for batch in stream:
                seqs += [changelog.decode(r).seq for r in batch.records]
                if seqs and seqs[-1] == last:
                    break
            stream.cancel()
            assert seqs == list(range(start_at, last + 1))
        primary.engine.trim_changes(5)
        with pytest.raises(grpc.RpcError) as info:
            next(iter(stub.Stream(rpb.StreamRequest(from_seq=2, epoch=1), timeout=5)))
        assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_follower_bootstraps_applies_and_forwards(primary, tmp_path):
    with Client(primary.address) as c:
        c.mkdir(ROOT_INO, "before")
    follower = follower_of(primary.address, f"rocksdb://{tmp_path}/follower")
    try:
        with Client(primary.address) as c, Client(follower.address) as fc:
            d = c.mkdir(ROOT_INO, "after")
            for i in range(50):
                c.create(d.ino, f"f{i}")
            wait_for(lambda: caught_up(follower, primary.engine), what="follower catch-up")
            assert namespace(follower.engine) == namespace(primary.engine)
            wait_for(lambda: status(follower.address).connected, what="link up")
            # A write on the follower is the primary's, and readable here at once.
            made = fc.mkdir(ROOT_INO, "via-follower")
            assert fc.lookup(ROOT_INO, "via-follower").ino == made.ino
            assert c.lookup(ROOT_INO, "via-follower").ino == made.ino
        with grpc.insecure_channel(follower.address) as channel:
            stub = metadata_pb2_grpc.MetadataStub(channel)
            reply, call = stub.Mkdir.with_call(pb.MkdirRequest(
                parent=ROOT_INO, name=b"seq", mode=0o755, request_id=os.urandom(16)), timeout=10)
            commit_seq = int(dict(call.trailing_metadata())[COMMIT_SEQ_KEY])
            _, call = stub.Lookup.with_call(
                pb.LookupRequest(parent=ROOT_INO, name=b"seq"), timeout=10,
                metadata=[(MIN_SEQ_KEY, str(commit_seq))])
            assert int(dict(call.trailing_metadata())[APPLIED_SEQ_KEY]) >= commit_seq
        reply = status(follower.address)
        assert reply.role == "follower" and reply.ready and reply.connected
        assert reply.applied_seq == primary.engine.last_seq()
    finally:
        follower.stop()


def test_a_follower_read_during_an_apply_names_a_range_that_holds_what_it_saw(
        primary, monkeypatch):
    """A batch is visible in the follower's engine before its position moves in memory:
    the read's end trailer must already cover it (a jepsen run found one that did not)."""
    committed, read_done = threading.Event(), threading.Event()
    apply_records = replication.apply_records

    def apply_then_stall(engine, at, records):
        new = apply_records(engine, at, records)
        if any(b"late" in r for r in records):
            committed.set()
            read_done.wait(10)          # the read happens between commit and bookkeeping
        return new

    monkeypatch.setattr(replication, "apply_records", apply_then_stall)
    follower = follower_of(primary.address)
    try:
        wait_for(lambda: status(follower.address).connected, what="link up")
        with Client(primary.address) as c:
            c.mkdir(ROOT_INO, "late")
        late_seq = primary.engine.last_seq()
        assert committed.wait(10)
        with grpc.insecure_channel(follower.address) as channel:
            stub = metadata_pb2_grpc.MetadataStub(channel)
            reply, call = stub.Lookup.with_call(pb.LookupRequest(parent=ROOT_INO, name=b"late"),
                                                timeout=10)
        read_done.set()
        trailers = dict(call.trailing_metadata())
        assert reply.name == b"late"
        assert int(trailers[APPLIED_SEQ_KEY]) < late_seq <= int(trailers[APPLIED_SEQ_END_KEY])
    finally:
        read_done.set()
        follower.stop()


@pytest.mark.parametrize("meta_url", ["memory://", "sqlite"])
def test_an_idle_stream_waits_for_commits_instead_of_reading_the_log(meta_url, tmp_path,
                                                                       monkeypatch):
    """A caught-up stream reads the log again when something commits (or to send a
    heartbeat), not every few milliseconds; a commit still reaches it at once."""
    if meta_url == "sqlite":
        meta_url = format_url(f"sqlite:///{tmp_path}/kv.sqlite")
    srv = start(ServerConfig(meta_url=meta_url, listen="127.0.0.1:0", changelog_keep=1000))
    reads = []
    read_changes = replication.read_changes
    monkeypatch.setattr(replication, "read_changes",
                        lambda *a, **k: reads.append(1) or read_changes(*a, **k))
    try:
        with Client(srv.address) as c:
            c.mkdir(ROOT_INO, "before")
        with grpc.insecure_channel(srv.address) as channel:
            stream = replication_pb2_grpc.ReplicationStub(channel).Stream(
                rpb.StreamRequest(from_seq=1, epoch=1), timeout=30)
            while not next(stream).records:
                pass
            reads.clear()
            idle_until, beats = time.monotonic() + 1.5, 0
            while time.monotonic() < idle_until:
                assert not next(stream).records
                beats += 1
            assert beats <= 4 and len(reads) <= beats + 1, (beats, len(reads))
            with Client(srv.address) as c:
                c.mkdir(ROOT_INO, "after")
            batch = next(stream)
            while not batch.records:        # a heartbeat already on its way
                batch = next(stream)
            assert [changelog.decode(r).seq for r in batch.records] == [
                srv.engine.last_seq()]
            stream.cancel()
    finally:
        srv.stop()


def test_a_write_the_primary_refuses_reaches_the_client_as_the_primary_said(primary, caplog):
    """A forwarded write's refusal (EEXIST, EDQUOT, an atomic batch's failing operation)
    comes back with the primary's status, message and errno, and the follower logs no
    internal error (it once re-raised the primary's answer and reported INTERNAL)."""
    follower = follower_of(primary.address)
    try:
        wait_for(lambda: status(follower.address).connected, what="link up")
        with Client(primary.address) as c:
            quota_dir = c.mkdir(ROOT_INO, "limited").ino
            c.set_quota(quota_dir, max_inodes=1)
        with grpc.insecure_channel(follower.address) as channel:
            stub = metadata_pb2_grpc.MetadataStub(channel)
            for request, code, number, message in (
                    (pb.MkdirRequest(parent=ROOT_INO, name=b"limited", mode=0o755),
                     grpc.StatusCode.ALREADY_EXISTS, errno.EEXIST, "'limited' exists"),
                    (pb.CreateRequest(parent=quota_dir, name=b"a", mode=0o644),
                     None, None, None),
                    (pb.CreateRequest(parent=quota_dir, name=b"b", mode=0o644),
                     grpc.StatusCode.RESOURCE_EXHAUSTED, errno.EDQUOT, "quota of 1 inodes")):
                call = getattr(stub, type(request).__name__.removesuffix("Request"))
                if code is None:
                    call(request, timeout=10)
                    continue
                with pytest.raises(grpc.RpcError) as info:
                    call(request, timeout=10)
                assert info.value.code() == code
                assert message in info.value.details()
                assert dict(info.value.trailing_metadata())[ERRNO_KEY] == str(number)
            batch = pb.BatchRequest(atomic=True, request_id=os.urandom(16), ops=[
                pb.Operation(mkdir=pb.MkdirRequest(parent=ROOT_INO, name=b"new", mode=0o755)),
                pb.Operation(mkdir=pb.MkdirRequest(parent=ROOT_INO, name=b"limited",
                                                   mode=0o755))])
            with pytest.raises(grpc.RpcError) as info:
                stub.Batch(batch, timeout=10)
            trailers = dict(info.value.trailing_metadata())
            assert (trailers[ERRNO_KEY], trailers[BATCH_INDEX_KEY]) == (str(errno.EEXIST), "1")
        assert "internal error" not in caplog.text
    finally:
        follower.stop()


def test_link_faults_forwarded_writes_and_request_id_retry(primary):
    proxy = FaultProxy(free_port(), primary.address).start()
    follower = follower_of(proxy.address)
    try:
        # A follower forwards writes only once its stream has heard from the primary.
        wait_for(lambda: status(follower.address).connected, what="link up")
        with Client(follower.address, retry=NO_RETRY, timeout=2) as fc:
            fc.mkdir(ROOT_INO, "up")
            # Requests arrive, answers do not: the outcome is unknown to the writer.
            proxy.set(drop_replies=True)
            request_id = fc.new_request_id()
            with pytest.raises(OSError) as info:
                fc.call("mkdir", parent=ROOT_INO, name=b"once", mode=0o755,
                        request_id=request_id)
            assert info.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.EROFS)
            # The link is down: writes fail at once with EROFS, reads keep working.
            wait_for(lambda: not status(follower.address).connected, what="link down")
            with pytest.raises(OSError) as info:
                fc.mkdir(ROOT_INO, "refused")
            assert info.value.errno == errno.EROFS
            assert fc.lookup(ROOT_INO, "up").name == b"up"
            proxy.set(drop_replies=False)
            proxy.reset()
            wait_for(lambda: status(follower.address).connected, what="link back")
            first = primary.runner.call("lookup", parent=ROOT_INO, name=b"once")
            retried = fc.call("mkdir", parent=ROOT_INO, name=b"once", mode=0o755,
                              request_id=request_id)
            assert retried.ino == first.ino
            assert fc.lookup(ROOT_INO, "once").ino == first.ino
        wait_for(lambda: caught_up(follower, primary.engine), what="catch-up")
        assert namespace(follower.engine) == namespace(primary.engine)
    finally:
        follower.stop()
        proxy.stop()


def test_primary_down_writes_fail_fast_reads_work(tmp_path):
    primary = ServerProcess(format_url(f"rocksdb://{tmp_path}/primary")).start()
    follower = ServerProcess(f"rocksdb://{tmp_path}/follower", follow=primary.address).start()
    try:
        with Client(primary.address) as c:
            c.mkdir(ROOT_INO, "kept")
        with Client(follower.address, retry=NO_RETRY, timeout=5) as fc:
            wait_for(lambda: _exists(fc, "kept"), what="replicated mkdir")
            primary.kill()
            with pytest.raises(OSError) as info:
                fc.mkdir(ROOT_INO, "nope")
            assert info.value.errno in (errno.EROFS, errno.EIO)
            wait_for(lambda: not status(follower.address).connected, what="link down")
            with pytest.raises(OSError) as info:
                fc.mkdir(ROOT_INO, "nope")
            assert info.value.errno == errno.EROFS
            assert fc.lookup(ROOT_INO, "kept").name == b"kept"
            primary.start()   # same data, same port: the follower resumes
            wait_for(lambda: status(follower.address).connected, what="reconnect")
            fc.mkdir(ROOT_INO, "after-restart")
            assert fc.lookup(ROOT_INO, "after-restart")
    finally:
        follower.stop()
        primary.stop()


def test_follower_kill9_restart_applies_exactly_once(tmp_path):
    primary = ServerProcess(format_url(f"rocksdb://{tmp_path}/primary")).start()
    follower = ServerProcess(f"rocksdb://{tmp_path}/follower", follow=primary.address)
    try:
        follower.start()
        with Client(primary.address) as c:
            d = c.mkdir(ROOT_INO, "data")
            for round_ in range(3):
                batch = c.batch()
                for i in range(300):
                    batch.create(d.ino, f"r{round_}-{i}")
                batch.run()
                follower.kill()        # mid-stream, wherever apply happens to be
                follower.start()
        for _ in range(3):
            last = status(primary.address).last_seq
            wait_for(lambda: status(follower.address).applied_seq >= last, what="catch-up")
            follower.stop()
            primary.stop()
            p_engine = open_engine(f"rocksdb://{tmp_path}/primary")
            f_engine = open_engine(f"rocksdb://{tmp_path}/follower")
            try:
                # The primary's maintenance may commit (a fold) after the catch-up check:
                # compare only stores that stopped at the same record.
                if replication.position(f_engine).seq == p_engine.last_seq():
                    assert namespace(f_engine) == namespace(p_engine)
                    break
            finally:
                p_engine.close()
                f_engine.close()
            primary.start()
            follower.start()
        else:
            pytest.fail("the primary kept committing after its writes ended")
    finally:
        follower.stop()
        primary.stop()


def _exists(client: Client, name: str) -> bool:
    try:
        client.lookup(ROOT_INO, name)
        return True
    except FileNotFoundError:
        return False


def test_promote_fences_the_old_primary_which_rejoins_as_follower(tmp_path):
    old_url = format_url(f"rocksdb://{tmp_path}/old")
    old = start(ServerConfig(meta_url=old_url, listen="127.0.0.1:0"))
    new = follower_of(old.address)
    others = []
    try:
        with Client(old.address) as c:
            c.mkdir(ROOT_INO, "epoch1")
        wait_for(lambda: caught_up(new, old.engine), what="catch-up")
        assert new.node.promote(force=False, timeout=10).epoch == 2
        with Client(new.address) as c:
            c.mkdir(ROOT_INO, "epoch2")
        # A follower of the new primary bootstraps in epoch 2 and has both writes.
        other = follower_of(new.address)
        others.append(other)
        with Client(other.address) as c:
            assert {e.name for e in c.readdir(ROOT_INO)} >= {b"epoch1", b"epoch2"}
        # Pointed at the old primary, it refuses the stale epoch; the old primary learns
        # it was superseded and refuses writes from then on.
        with grpc.insecure_channel(old.address) as channel:
            stub = replication_pb2_grpc.ReplicationStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                next(iter(stub.Stream(rpb.StreamRequest(from_seq=1, epoch=2), timeout=5)))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with Client(old.address, retry=NO_RETRY) as c:
            with pytest.raises(OSError) as refused:
                c.mkdir(ROOT_INO, "split-brain")
            assert refused.value.errno == errno.EROFS
        assert status(old.address).role == "fenced"
        # The old primary rejoins as a follower: its history ends where the new one's
        # left it (a switchover), so a fresh bootstrap over its old state loses nothing.
        old.stop()
        old = follower_of(new.address, old_url)
        wait_for(lambda: caught_up(old, new.engine), what="rejoined catch-up")
        assert namespace(old.engine) == namespace(new.engine)
    finally:
        for srv in others + [new, old]:
            srv.stop()
