"""The server exports Prometheus metrics: operations by outcome, latency, retries."""

from __future__ import annotations

import urllib.request

import grpc

from metaserver.service import ServerConfig, start
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
