"""The server exports Prometheus metrics: operations by outcome, latency, retries."""

from __future__ import annotations

import subprocess
import urllib.request

import grpc

from metaserver.service import ServerConfig, start
from metaserver.testing.metaserver_process import METASERVER, format_store, status, wait_for
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

from conftest import free_port


def test_metrics_endpoint_counts_operations():
    metrics = f"127.0.0.1:{free_port()}"
    server = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", metrics_listen=metrics))
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.MetadataStub(channel)
            stub.Mkdir(pb.MkdirRequest(request_id=b"m1", parent=1, name=b"metrics-dir", mode=0o755))
            try:
                stub.GetAttr(pb.GetAttrRequest(ino=987654))
            except grpc.RpcError:
                pass
        text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    finally:
        server.stop()
    assert 'metaserver_ops_total{op="mkdir",outcome="ok"}' in text
    assert 'metaserver_ops_total{op="getattr",outcome="ENOENT"}' in text
    assert 'metaserver_op_seconds_bucket{le="0.001",op="mkdir"}' in text


def test_replication_gauges_only_on_a_follower(tmp_path):
    """`metaserver serve` processes: a primary's /metrics has no replication gauges (they
    would read 0 for ever); its follower's has them, with the follower's figures."""
    def serve(name: str, *extra: str) -> tuple[subprocess.Popen, str, str]:
        address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        url = f"rocksdb://{tmp_path}/{name}"
        if not extra:
            format_store(url)
        proc = subprocess.Popen([METASERVER, "serve", "--meta-url", url, "--listen", address,
                                 "--metrics-listen", metrics, *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: status(address, 1), what=f"{name} serving")
        return proc, address, metrics

    def scrape(metrics: str) -> str:
        return urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()

    primary, address, primary_metrics = serve("primary")
    try:
        follower, _, follower_metrics = serve("follower", "--follow", address)
        try:
            wait_for(lambda: "metaserver_replication_applied_seq " in scrape(follower_metrics),
                     what="follower gauges")
            assert "metaserver_replication" not in scrape(primary_metrics)
        finally:
            follower.terminate()
            follower.wait(15)
    finally:
        primary.terminate()
        primary.wait(15)


def test_the_reads_of_a_batch_are_counted_each_and_timed_as_a_group():
    from prometheus_client import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    server = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.MetadataStub(channel)
            parent = stub.Mkdir(pb.MkdirRequest(parent=1, name=b"group", mode=0o755)).ino
            for name in (b"a", b"b"):
                stub.Create(pb.CreateRequest(parent=parent, name=name, mode=0o644))
            before = (value("metaserver_ops_total", op="lookup", outcome="ok"),
                      value("metaserver_ops_total", op="lookup", outcome="ENOENT"),
                      value("metaserver_ops_total", op="getattr", outcome="ok"),
                      value("metaserver_op_seconds_count", op="read_group"))
            reply = stub.Batch(pb.BatchRequest(ops=[
                pb.Operation(lookup=pb.LookupRequest(parent=parent, name=b"a")),
                pb.Operation(lookup=pb.LookupRequest(parent=parent, name=b"b")),
                pb.Operation(lookup=pb.LookupRequest(parent=parent, name=b"missing")),
                pb.Operation(getattr=pb.GetAttrRequest(ino=parent))]))
            after = (value("metaserver_ops_total", op="lookup", outcome="ok"),
                     value("metaserver_ops_total", op="lookup", outcome="ENOENT"),
                     value("metaserver_ops_total", op="getattr", outcome="ok"),
                     value("metaserver_op_seconds_count", op="read_group"))
    finally:
        server.stop()
    assert [r.WhichOneof("result") for r in reply.results] == ["entry", "entry", "error", "attr"]
    assert [a - b for a, b in zip(after, before)] == [2, 1, 1, 1]
