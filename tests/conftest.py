"""Shared fixtures: engines by name, a namespace runner, a live gRPC server."""

from __future__ import annotations

import pytest

from engines import open_engine

ENGINE_NAMES = ["memory", "rocksdb"]


def engine_url(name: str, tmp_path) -> str:
    return {"memory": "memory://", "rocksdb": f"rocksdb://{tmp_path}/db"}[name]


@pytest.fixture(params=ENGINE_NAMES)
def engine(request, tmp_path):
    eng = open_engine(engine_url(request.param, tmp_path))
    yield eng
    eng.close()
