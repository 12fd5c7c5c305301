"""Fairness: per-client rate and concurrency limits and the server-wide cap refuse the
excess with RESOURCE_EXHAUSTED and EAGAIN before it runs, per token, and the client
library backs off and gets through."""

from __future__ import annotations

import errno
import threading

import grpc
import pytest
from prometheus_client import REGISTRY
from conftest import format_url

from metaserver.client import Client, RetryPolicy
from metaserver.service.auth import Role, create_token
from metaserver.service.codec import SERVICE
from metaserver.service.config import ServerConfig
from metaserver.service.errors import ERRNO_KEY
from metaserver.service.limits import Limits, Overloaded
from metaserver.service.server import start
from metaserver.types import ROOT_INO

NO_RETRY = RetryPolicy(attempts=1)


def test_rate_limit_refuses_the_excess_with_eagain_per_token(tmp_path):
    store = str(tmp_path / "tokens.json")
    greedy = create_token(store, [Role.WRITE], "greedy")[1]
    other = create_token(store, [Role.WRITE], "other")[1]
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=store,
                             client_ops_per_s=5))
    try:
        with grpc.insecure_channel(srv.address) as channel:
            echo = channel.unary_unary(f"/{SERVICE.full_name}/Echo")
            refused = []
            for _ in range(20):     # a burst of one second's worth passes, then refusals
                try:
                    echo(b"", timeout=5, metadata=[("authorization", f"Bearer {greedy}")])
                except grpc.RpcError as exc:
                    refused.append(exc)
            assert len(refused) >= 10
            assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert {dict(e.trailing_metadata())[ERRNO_KEY] for e in refused} == \
                {str(errno.EAGAIN)}
            assert "calls/s" in refused[0].details()
            assert REGISTRY.get_sample_value("metaserver_refused_calls_total",
                                             {"reason": "over_limit"}) >= len(refused)
        # The other token has its own share.
        with Client(srv.address, token=other, retry=NO_RETRY) as polite:
            assert polite.echo(b"x") == b"x"
        with Client(srv.address, token=greedy, retry=NO_RETRY) as impatient:
            with pytest.raises(BlockingIOError) as info:
                for _ in range(10):
                    impatient.mkdir(ROOT_INO, b"x")
            assert info.value.errno == errno.EAGAIN
        # The client library backs off on EAGAIN and gets every call through.
        with Client(srv.address, token=greedy,
                    retry=RetryPolicy(attempts=30, total_seconds=30)) as patient:
            for i in range(15):
                patient.mkdir(ROOT_INO, f"d{i}".encode())
            assert sum(1 for _ in patient.readdir(ROOT_INO)) >= 15
    finally:
        srv.stop()


def test_concurrency_limit_on_an_open_server_is_per_connection(tmp_path):
    # RocksDB: each commit waits for its fsync, so one client's calls overlap.
    srv = start(ServerConfig(meta_url=format_url(f"rocksdb://{tmp_path}/db"),
                             listen="127.0.0.1:0", client_max_concurrent=1))
    try:
        refusals = []
        lock = threading.Lock()

        def hammer(client: Client, n: int):
            for i in range(40):
                try:
                    client.mkdir(ROOT_INO, f"t{n}-{i}".encode())
                except BlockingIOError as exc:
                    with lock:
                        refusals.append(exc)
        with Client(srv.address, retry=NO_RETRY) as shared:
            threads = [threading.Thread(target=hammer, args=(shared, n)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert refusals and all("concurrent calls" in str(e) for e in refusals)
        # Another connection is another client: its single calls pass.
        with Client(srv.address, retry=NO_RETRY) as other:
            assert other.echo(b"y") == b"y"
    finally:
        srv.stop()


def test_limits_admit_within_each_limit_and_release_places():
    limits = Limits(client_concurrent=2, server_concurrent=3)
    with limits.admit("a"), limits.admit("a"):
        with pytest.raises(Overloaded, match="this client's limit"):
            with limits.admit("a"):
                pass
        with limits.admit("b"):
            with pytest.raises(Overloaded, match="server limit"):
                with limits.admit("c"):
                    pass
    with limits.admit("a"), limits.admit("a"), limits.admit("c"):
        pass                                    # every place was given back
    rate = Limits(ops_per_s=1000)
    for _ in range(1000):                       # the burst: one second's worth
        with rate.admit("a"):
            pass
    with pytest.raises(Overloaded, match="calls/s"):
        for _ in range(100):
            with rate.admit("a"):
                pass
