"""The client library's os-like calls and batches, run in process by a Runner (no RPC),
so `--meta-url` measures the namespace and engine alone through the same code path."""

from __future__ import annotations

import itertools
import os

from metaserver.client import wire
from metaserver.client.operations import Operations
from metaserver.runner import Runner, open_namespace


def _as_runner_call(op: str, fields: dict) -> tuple[str, dict]:
    """The Runner operation and kwargs for a wire operation and its request fields."""
    if "slice" in fields:
        fields["slice"] = wire.slice_(fields["slice"])
    return op, fields


class InprocClient(Operations):
    """Client-shaped access to a Runner over the engine at `url`."""

    def __init__(self, url: str) -> None:
        self.runner = Runner(open_namespace(url))     # memory:// is formatted; others must be
        self._client_id = os.urandom(8)
        self._counter = itertools.count(1)

    def new_request_id(self) -> bytes:
        return self._client_id + next(self._counter).to_bytes(8, "big")

    def _request(self, op: str, fields: dict) -> tuple[str, bytes, dict]:
        request_id = self.new_request_id() if wire.CALLS[op].mutating else b""
        fields.pop("request_id", None)
        name, kwargs = _as_runner_call(op, fields)
        return name, request_id, kwargs

    def _op(self, op: str, subject: bytes | None, /, **fields):
        name, request_id, kwargs = self._request(op, fields)
        return self.runner.call(name, request_id, **kwargs)

    def batch(self, atomic: bool = False) -> InprocBatch:
        return InprocBatch(self)

    def close(self) -> None:
        self.runner.engine.close()


class InprocBatch(Operations):
    """Queued operations run by Runner.call_many (each its own transaction, one log
    sync), like an independent Batch RPC; results are values or the errors raised."""

    def __init__(self, client: InprocClient) -> None:
        self.client = client
        self._calls: list[tuple[str, bytes, dict]] = []

    def _op(self, op: str, subject: bytes | None, /, **fields) -> InprocBatch:
        self._calls.append(self.client._request(op, fields))
        return self

    def run(self) -> list:
        return self.client.runner.call_many(self._calls)
