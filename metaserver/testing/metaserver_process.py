"""`metaserver format` and `metaserver serve` as child processes on loopback (replication
tests, benchmarks, deploy/two-dc.sh), asking a server for its replication status,
waiting for a condition, and the namespace keyspace of an engine (what a follower
mirrors)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from engines.contract import ENGINE_RESERVED_PREFIX, Engine
from metaserver.testing import free_port
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc

METASERVER = os.path.join(os.path.dirname(sys.executable), "metaserver")


def namespace(engine: Engine) -> dict[bytes, bytes]:
    """Every namespace key of an engine (what a follower mirrors)."""
    with engine.snapshot() as txn:
        return dict(txn.scan(b"", ENGINE_RESERVED_PREFIX))


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


class ServerStartError(RuntimeError):
    """A store could not be formatted, or the server process exited or never answered;
    the message says which."""


def format_store(meta_url: str) -> str:
    """`metaserver format --meta-url URL`, as an operator runs it before the first
    `metaserver serve` (followers excepted: they bootstrap); returns the URL."""
    done = subprocess.run([METASERVER, "format", "--meta-url", meta_url], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ServerStartError(done.stderr.strip() or f"metaserver format exited with "
                               f"{done.returncode}")
    return meta_url


class ServerProcess:
    """`metaserver serve` in its own process, on a fixed loopback port.

    The process gets a session of its own, so a terminal's Ctrl-C reaches only whoever
    started it, who stops it by PID (and in the order it needs). `rejoin` and
    `rollback_dir` are serve's flags of those names; `env` is added to the server's
    environment (libfaketime's, for a skewed clock). All may be changed between stop
    and start."""

    def __init__(self, meta_url: str, *, follow: str = "", port: int | None = None,
                 log_path: str = os.devnull, rejoin: bool = False, rollback_dir: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.meta_url, self.follow = meta_url, follow
        self.rejoin, self.rollback_dir, self.env = rejoin, rollback_dir, env or {}
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
        if self.rejoin:
            args.append("--rejoin")
        if self.rollback_dir:
            args += ["--rollback-dir", self.rollback_dir]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True,
                                         env={**os.environ, **self.env} if self.env else None)
        try:
            wait_for(lambda: self.proc.poll() is not None or status(self.address, 1),
                     what=f"server on {self.address}")
        except AssertionError as exc:
            self.kill()
            raise ServerStartError(f"{exc} (log: {self.log_path})") from None
        if self.proc.poll() is not None:
            raise ServerStartError(f"server on {self.address} exited with "
                                   f"{self.proc.returncode} (log: {self.log_path})")
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
