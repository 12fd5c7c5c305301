"""Kill -9 the server during a write load; after restart every acknowledged write is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

from conftest import format_url, free_port

pytestmark = pytest.mark.timeout(180)
ROOT = 1


class ServerProcess:
    """`metaserver serve` as a child process of this test, on a loopback port."""

    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        exe = os.path.join(os.path.dirname(sys.executable), "metaserver")
        self.proc = subprocess.Popen(
            [exe, "serve", "--meta-url", f"rocksdb://{data_dir}", "--listen", self.address],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = pb_grpc.MetadataStub(self.channel)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.channel.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.channel.close()


def test_acknowledged_creates_survive_kill_9(tmp_path):
    format_url(f"rocksdb://{tmp_path / 'db'}")
    server = ServerProcess(str(tmp_path / "db"))
    top = server.stub.Mkdir(pb.MkdirRequest(request_id=b"top", parent=ROOT, name=b"load",
                                            mode=0o755))
    acked: list[tuple[bytes, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        # Bounded in count and time; stops at the first error (the kill).
        for i in range(5000):
            if stop.is_set():
                return
            name = b"w%d-%05d" % (worker, i)
            try:
                if i % 10 == 9:   # some batched creates too: acknowledged as one reply
                    names = [name + b"-%d" % j for j in range(20)]
                    reply = server.stub.Batch(pb.BatchRequest(ops=[pb.Operation(create=pb.CreateRequest(
                        request_id=n, parent=top.ino, name=n, mode=0o644)) for n in names]),
                        timeout=10)
                    done = [(n, r.entry.ino) for n, r in zip(names, reply.results)]
                else:
                    entry = server.stub.Create(pb.CreateRequest(
                        request_id=name, parent=top.ino, name=name, mode=0o644), timeout=10)
                    done = [(name, entry.ino)]
            except grpc.RpcError:
                return
            with lock:
                acked.extend(done)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 600 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 600, "the load did not get going"

    server = ServerProcess(str(tmp_path / "db"))
    try:
        for name, ino in acked:
            entry = server.stub.Lookup(pb.LookupRequest(parent=top.ino, name=name))
            assert entry.ino == ino, name
        # The namespace still works and the change log continued without a hole.
        server.stub.Create(pb.CreateRequest(request_id=b"after", parent=top.ino, name=b"after",
                                            mode=0o644))
    finally:
        server.stop()
    assert server.proc.returncode == 0

    from engines import open_engine
    from engines import changelog
    from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX
    from metaserver.fsck import fsck

    engine = open_engine(f"rocksdb://{tmp_path / 'db'}")
    try:
        snap = engine.snapshot()
        seqs = [changelog.decode(v).seq for _, v in snap.scan(CHANGELOG_PREFIX, CHANGELOG_END)]
        snap.rollback()
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        report = fsck(engine)
        assert report.ok, report.problems
    finally:
        engine.close()
