"""Shared fixtures: engines by name, an in-process server and a client, free ports."""

from __future__ import annotations

import socket

import pytest

from engines import open_engine
from metaserver.client import Client
from metaserver.service.config import ServerConfig
from metaserver.service.server import start

ENGINE_NAMES = ["memory", "rocksdb"]


def engine_url(name: str, tmp_path) -> str:
    return {"memory": "memory://", "rocksdb": f"rocksdb://{tmp_path}/db"}[name]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=ENGINE_NAMES)
def engine(request, tmp_path):
    eng = open_engine(engine_url(request.param, tmp_path))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def server():
    """A real gRPC server on the in-memory engine, shared by one test module."""
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with Client(server.address) as c:
        yield c
