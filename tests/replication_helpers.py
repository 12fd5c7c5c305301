"""Helpers of the replication tests: metaserver processes on loopback, the namespace
keyspace of an engine, and waiting for a follower to reach a position."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from conftest import free_port
from engines.contract import ENGINE_RESERVED_PREFIX, Engine
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc

METASERVER = os.path.join(os.path.dirname(sys.executable), "metaserver")


def namespace(engine: Engine) -> dict[bytes, bytes]:
    """Every namespace key of an engine (what a follower mirrors)."""
    txn = engine.snapshot()
    try:
        return dict(txn.scan(b"", ENGINE_RESERVED_PREFIX))
    finally:
        txn.rollback()


def status(address: str, timeout: float = 5) -> rpb.StatusReply:
    with grpc.insecure_channel(address) as channel:
        return replication_pb2_grpc.ReplicationStub(channel).Status(rpb.StatusRequest(),
                                                                    timeout=timeout)


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    """Poll until predicate() is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except grpc.RpcError:
            value = None
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class ServerProcess:
    """`metaserver serve` in its own process, on a fixed loopback port."""

    def __init__(self, meta_url: str, *, follow: str = "", port: int | None = None,
                 log_path: str = os.devnull) -> None:
        self.meta_url, self.follow = meta_url, follow
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        args = [METASERVER, "serve", "--meta-url", self.meta_url, "--listen", self.address]
        if self.follow:
            args += ["--follow", self.follow]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        wait_for(lambda: self.proc.poll() is not None or status(self.address, 1),
                 what=f"server on {self.address}")
        assert self.proc.poll() is None, f"server exited with {self.proc.returncode}"
        return self

    def kill(self) -> None:
        """kill -9, by PID."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
