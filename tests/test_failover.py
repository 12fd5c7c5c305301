"""Failover without split-brain or silent loss: planned switchover fences the old
primary first and loses nothing; forced failover is explicit and says where it promoted;
a stale primary refuses writes once it hears of the new epoch (from a client, a node, or
the promoted follower); a node restarted with yesterday's --follow refuses to go back an
epoch; a rejoining former primary keeps what it had after the fork in a rollback file."""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import threading

import grpc
import pytest

from conftest import format_url, formatted, free_port
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen.faultproxy import FaultProxy  # noqa: E402
from engines import open_engine
from metaserver import replication
from metaserver.client import Client, RetryPolicy
from metaserver.errors import FsError
from metaserver.runner import Runner
from metaserver.service import ServerConfig, start
from metaserver.service.server import StartError
from metaserver.types import ROOT_INO
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc
from metaserver.testing.metaserver_process import namespace, status, wait_for

NO_RETRY = RetryPolicy(attempts=1)
METACTL = os.path.join(os.path.dirname(sys.executable), "metactl")


def promote(address: str, force: bool = False, timeout: float = 10) -> rpb.PromoteReply:
    with grpc.insecure_channel(address) as channel:
        return replication_pb2_grpc.ReplicationStub(channel).Promote(
            rpb.PromoteRequest(force=force, timeout_s=timeout), timeout=60)


def names(address: str) -> set[bytes]:
    with Client(address) as c:
        return {e.name for e in c.readdir(ROOT_INO)}


@pytest.fixture
def servers():
    running = []
    yield running
    for srv in reversed(running):
        srv.stop()


def test_switchover_under_load_fences_first_and_loses_nothing(tmp_path, servers):
    old = start(ServerConfig(meta_url=format_url(f"rocksdb://{tmp_path}/old"),
                             listen="127.0.0.1:0"))
    servers.append(old)
    new = start(ServerConfig(meta_url=f"rocksdb://{tmp_path}/new", listen="127.0.0.1:0",
                             follow=old.address))
    servers.append(new)
    acked, refused, stop = [], [], threading.Event()

    def writer():
        with Client(old.address, retry=NO_RETRY) as c:
            for i in range(100_000):
                if stop.is_set():
                    return
                try:
                    c.create(ROOT_INO, f"f{i}")
                    acked.append(f"f{i}".encode())
                except OSError as exc:
                    refused.append(exc.errno)
                    if len(refused) > 20:
                        return

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(acked) > 200, what="writes before the switchover")
    reply = promote(new.address)
    stop.set()
    thread.join(30)
    assert reply.old_primary_fenced and reply.records_lost == 0
    assert reply.promoted_at_seq == reply.old_primary_seq
    assert reply.epoch == 2 and reply.promoted_at_epoch == 1
    # Every write the old primary acknowledged is on the new one; after the fence it
    # acknowledged none (the writer saw EROFS).
    assert set(acked) <= names(new.address)
    assert refused and set(refused) == {errno.EROFS}
    with Client(old.address, retry=NO_RETRY) as c:
        with pytest.raises(OSError) as info:
            c.mkdir(ROOT_INO, "split-brain")
        assert info.value.errno == errno.EROFS
    assert status(old.address).role == "fenced"
    assert status(old.address).superseded_by == 2
    with Client(new.address) as c:
        c.mkdir(ROOT_INO, "epoch2")


def test_promote_refuses_when_the_old_primary_is_unreachable_unless_forced(tmp_path, servers):
    old_url = format_url(f"rocksdb://{tmp_path}/old")
    old = start(ServerConfig(meta_url=old_url, listen="127.0.0.1:0"))
    servers.append(old)
    proxy = FaultProxy(free_port(), old.address).start()
    try:
        new = start(ServerConfig(meta_url=f"rocksdb://{tmp_path}/new", listen="127.0.0.1:0",
                                 follow=proxy.address))
        servers.append(new)
        with Client(old.address) as c:
            c.mkdir(ROOT_INO, "before")
        wait_for(lambda: new.node.follower.applied >= old.engine.last_seq(), what="catch-up")
        position = new.node.follower.applied
        proxy.set(blackhole=True)
        proxy.reset()
        # The old primary, cut off from its follower, acknowledges writes (async
        # replication): these are the forced failover's loss window.
        lost = [f"lost{i}" for i in range(7)]
        with Client(old.address) as c:
            for name in lost:
                c.create(ROOT_INO, name)
        with pytest.raises(grpc.RpcError) as info:
            promote(new.address)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--force" in info.value.details()
        assert status(new.address).role == "follower"      # nothing changed
        reply = promote(new.address, force=True)
        assert not reply.old_primary_fenced and reply.records_lost == -1
        assert (reply.promoted_at_epoch, reply.promoted_at_seq) == (1, position)
        with Client(new.address) as c:
            c.mkdir(ROOT_INO, "after")
        # A client that has seen epoch 2 reaches the old primary: it is fenced at once.
        with grpc.insecure_channel(old.address) as channel:
            stub = metadata_pb2_grpc.MetadataStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Mkdir(pb.MkdirRequest(parent=ROOT_INO, name=b"split", mode=0o755),
                           metadata=[("metaserver-epoch", "2")], timeout=10)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert dict(info.value.trailing_metadata())["metaserver-errno"] == str(errno.EROFS)
        assert status(old.address).role == "fenced"
    finally:
        proxy.stop()

    # Rejoin: refused without --rejoin (it would discard acknowledged writes), and the
    # refusal changes nothing; with --rejoin they go to a rollback file first.
    old.stop()
    servers.remove(old)
    rollback_dir = str(tmp_path / "rollback")
    with pytest.raises(StartError, match="--rejoin"):
        start(ServerConfig(meta_url=old_url, listen="127.0.0.1:0", follow=new.address,
                           rollback_dir=rollback_dir))
    assert not os.path.exists(rollback_dir)
    rejoined = start(ServerConfig(meta_url=old_url, listen="127.0.0.1:0", follow=new.address,
                                  rejoin=True, rollback_dir=rollback_dir))
    servers.append(rejoined)
    state = status(rejoined.address)
    assert state.role == "follower" and state.rollback_records == len(lost)
    assert os.path.dirname(state.rollback_file) == rollback_dir
    wait_for(lambda: rejoined.node.follower.applied >= new.engine.last_seq(), what="rejoin")
    assert namespace(rejoined.engine) == namespace(new.engine)
    assert b"after" in names(rejoined.address) and b"lost0" not in names(rejoined.address)

    # The rollback file lists the lost operations with their paths, and re-applies them.
    listing = subprocess.run([METACTL, "rollback", "list", state.rollback_file],
                             capture_output=True, text=True, check=True).stdout
    assert f"{len(lost)} operations after sequence {position}" in listing
    for name in lost:
        assert f"parent=/, name={name}" in listing
    subprocess.run([METACTL, "--server", new.address, "rollback", "apply", "--all",
                    state.rollback_file], capture_output=True, text=True, check=True)
    assert set(n.encode() for n in lost) <= names(new.address)
    again = subprocess.run([METACTL, "--server", new.address, "rollback", "apply", "--all",
                            state.rollback_file], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr      # same request ids: applied once


def test_restart_with_yesterdays_follow_flag_refuses_and_fences_the_stale_primary(
        tmp_path, servers):
    old = start(ServerConfig(meta_url=format_url(f"rocksdb://{tmp_path}/old"),
                             listen="127.0.0.1:0"))
    servers.append(old)
    new_url = f"rocksdb://{tmp_path}/new"
    new = start(ServerConfig(meta_url=new_url, listen="127.0.0.1:0", follow=old.address))
    with Client(old.address) as c:
        c.mkdir(ROOT_INO, "epoch1")
    wait_for(lambda: new.node.follower.applied >= old.engine.last_seq(), what="catch-up")
    assert promote(new.address).epoch == 2
    with Client(new.address) as c:
        c.mkdir(ROOT_INO, "epoch2")
    kept = namespace(new.engine)
    new.stop()
    # The old primary is fenced by the switchover; clear that to show the restarted node
    # also tells a stale primary it reaches (as after a forced failover).
    with pytest.raises(StartError, match="epoch 1 is older than this node's 2"):
        start(ServerConfig(meta_url=new_url, listen="127.0.0.1:0", follow=old.address))
    restarted = start(ServerConfig(meta_url=new_url, listen="127.0.0.1:0"))
    servers.append(restarted)
    assert namespace(restarted.engine) == kept         # nothing wiped
    assert status(restarted.address).role == "primary"
    assert status(restarted.address).epoch == 2


def test_a_node_never_bootstraps_over_another_namespace_unless_told(tmp_path, servers):
    primary = start(ServerConfig(meta_url=format_url(f"rocksdb://{tmp_path}/a"),
                                 listen="127.0.0.1:0"))
    servers.append(primary)
    other_url = format_url(f"rocksdb://{tmp_path}/b")
    other = start(ServerConfig(meta_url=other_url, listen="127.0.0.1:0"))
    with Client(other.address) as c:
        c.mkdir(ROOT_INO, "precious")
    other.stop()
    with pytest.raises(StartError, match="another namespace"):
        start(ServerConfig(meta_url=other_url, listen="127.0.0.1:0", follow=primary.address))
    follower = start(ServerConfig(meta_url=other_url, listen="127.0.0.1:0",
                                  follow=primary.address, rejoin=True,
                                  rollback_dir=str(tmp_path / "rb")))
    servers.append(follower)
    state = status(follower.address)
    assert state.rollback_file and os.path.exists(state.rollback_file)
    assert b"precious" not in names(follower.address)


def test_a_fenced_primary_answers_a_retry_of_what_it_applied_before_the_fence():
    """The answer to a create is lost; the primary is fenced; the client retries with
    the same request id. The create did happen, so the retry gets its result: EROFS
    would tell the client it never happened. A new request is refused."""
    engine = formatted(open_engine("memory://", create=True))
    runner = Runner(engine)
    first = runner.call("create", b"r" * 16, parent=ROOT_INO, name=b"f")
    replication.fence(engine, 2)
    assert runner.call("create", b"r" * 16, parent=ROOT_INO, name=b"f").ino == first.ino
    with pytest.raises(FsError) as info:
        runner.call("create", b"s" * 16, parent=ROOT_INO, name=b"g")
    assert info.value.errno == errno.EROFS
    engine.close()
