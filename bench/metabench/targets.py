"""Targets: what a phase's operations run against. The namespace (over gRPC or in
process) and the three baselines (gRPC echo, the raw engine, a local file system) all
answer the same mdtest operations, so one phase runner measures them all alike.

Every target's `run(op, items)` does `op` for a list of items as one request (one
Batch of them when batching, else a single item) and returns, per item, its result
(a handle for mkdir/create, True otherwise) or the exception it raised.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable
from typing import NamedTuple

from engines import transactional
from metaserver import schema
from metaserver.types import ROOT_INO, Attr, FileType, Slice

# The client method of each operation that takes (parent, name); stat is a lookup by name.
_METHOD = {"mkdir": "mkdir", "create": "create", "stat": "lookup", "unlink": "unlink",
           "rmdir": "rmdir"}
SLICE_ID_CHUNK = 4096


class Item(NamedTuple):
    parent: object          # the target's handle of the directory
    name: str
    new_name: str = ""      # rename: the name it gets
    handle: object = None   # read: the item's own handle (inode number, path)


class TargetSpec(NamedTuple):
    """How a worker process opens a target (picklable)."""
    kind: str               # "grpc", "inproc", "echo", "raw", "localfs"
    where: str              # address, engine URL or directory
    timeout: float = 30.0
    write_bytes: int = 0
    token: str = ""         # bearer token for a server; empty: the client's default


class NamespaceTarget:
    """The metaserver namespace through a Client or an InprocClient (same methods)."""

    def __init__(self, api, write_bytes: int) -> None:
        self.api = api
        self.root = ROOT_INO
        self.write_bytes = write_bytes
        self._slices = iter(())
        self._slice_lock = threading.Lock()

    def _slice(self) -> Slice:
        with self._slice_lock:   # ids are reserved in bulk, as a client would
            slice_id = next(self._slices, None)
            if slice_id is None:
                first = self.api.alloc_slice_ids(SLICE_ID_CHUNK)
                self._slices = iter(range(first + 1, first + SLICE_ID_CHUNK))
                slice_id = first
        return Slice(0, slice_id, self.write_bytes, 0, self.write_bytes)

    @staticmethod
    def _calls(op: str, item: Item) -> list[tuple[str, tuple]]:
        """The client calls that do `op` on `item`; the first one's result is the item's."""
        if op == "read":
            return [("getattr", (item.handle,)), ("read_chunk", (item.handle, 0))]
        if op == "rename":
            return [("rename", (item.parent, item.name, item.parent, item.new_name))]
        return [(_METHOD[op], (item.parent, item.name))]

    def run(self, op: str, items: list[Item], batched: bool) -> list:
        if batched:
            batch = self.api.batch()
            calls = [self._calls(op, item) for item in items]
            for method, args in itertools.chain.from_iterable(calls):
                getattr(batch, method)(*args)
            flat = iter(batch.run())
            # an item failed if any of its operations did
            results = [_first_error([next(flat) for _ in mine]) for mine in calls]
        else:
            results = [_capture(lambda: [getattr(self.api, method)(*args)
                                         for method, args in self._calls(op, item)][0])
                       for item in items]
        results = [_handle(r) for r in results]
        if op == "create" and self.write_bytes:
            self._write(results, batched)
        return results

    def _write(self, results: list, batched: bool) -> None:
        """Record each new file's bytes as one slice of chunk 0."""
        created = [(i, ino) for i, ino in enumerate(results) if not isinstance(ino, Exception)]
        if batched:
            batch = self.api.batch()
            for _, ino in created:
                batch.write_slice(ino, 0, self._slice())
            outcomes = batch.run()
        else:
            outcomes = [_capture(lambda: self.api.write_slice(ino, 0, self._slice()))
                        for _, ino in created]
        for (i, _), outcome in zip(created, outcomes):
            if isinstance(outcome, Exception):
                results[i] = outcome

    def resolve(self, parent, name: str):
        return self.api.lookup(parent, name).ino

    def close(self) -> None:
        self.api.close()


class LocalFsTarget:
    """The same operations as os calls under a local directory (e.g. a tmpfs)."""

    def __init__(self, path: str, write_bytes: int) -> None:
        if not os.path.isdir(path):
            raise OSError(f"localfs baseline: {path} is not a directory")
        self.root = path
        self.data = b"\0" * write_bytes

    def _one(self, op: str, item: Item):
        path = os.path.join(item.parent, item.name)
        if op == "mkdir":
            os.mkdir(path)
        elif op == "create":
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                if self.data:
                    os.write(fd, self.data)
            finally:
                os.close(fd)
        elif op == "stat":
            os.stat(path)
        elif op == "read":
            os.stat(path)
            with open(path, "rb") as f:
                f.read()
        elif op == "rename":
            os.rename(path, os.path.join(item.parent, item.new_name))
        elif op == "unlink":
            os.unlink(path)
        elif op == "rmdir":
            os.rmdir(path)
        return path if op in ("mkdir", "create") else True

    def run(self, op: str, items: list[Item], batched: bool) -> list:
        return [_capture(lambda: self._one(op, item)) for item in items]

    def resolve(self, parent, name: str):
        return os.path.join(parent, name)

    def close(self) -> None:
        pass


class RawTarget:
    """The raw engine doing the key writes a namespace operation does (attribute and
    dentry; the chunk with -w), one transaction per item, without the namespace: no
    checks, no accounting, no idempotency records. A batch shares one log sync, as
    Runner.call_many does. Handles are derived from names, so nothing is looked up."""

    ATTR = schema.encode_attr(Attr(0, FileType.REGULAR, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0))
    DENTRY = schema.encode_dentry(FileType.REGULAR, 0)
    SLICE = schema.encode_slice(Slice(0, 0, 0, 0, 0))

    def __init__(self, url: str, write_bytes: int) -> None:
        from engines import open_engine
        self.engine = open_engine(url, create=True)     # a scratch store of its own
        self.root = ROOT_INO
        self.write_bytes = write_bytes

    @staticmethod
    def _ino(parent: int, name: str) -> int:
        digest = hashlib.blake2b(b"%d/%s" % (parent, name.encode()), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _one(self, op: str, item: Item, durable: bool):
        ino = self._ino(item.parent, item.name)
        attr, chunk = schema.attr_key(ino), schema.chunk_key(ino, 0)
        dentry = schema.dentry_key(item.parent, item.name.encode())

        def write(txn) -> None:
            if op in ("mkdir", "create"):
                txn.put(attr, self.ATTR)
                txn.put(dentry, self.DENTRY)
                if op == "create" and self.write_bytes:
                    txn.put(chunk, self.SLICE)
            elif op == "stat":
                txn.get(dentry)
                txn.get(attr)
            elif op == "read":
                txn.get(attr)
                txn.get(chunk)
            elif op == "rename":
                txn.get(dentry)
                txn.delete(dentry)
                txn.put(schema.dentry_key(item.parent, item.new_name.encode()), self.DENTRY)
                txn.put(attr, self.ATTR)
            else:   # unlink, rmdir
                txn.get(dentry)
                txn.delete(dentry)
                txn.delete(attr)
        transactional.run(self.engine, write, read_only=op in ("stat", "read"),
                          wait_durable=durable)
        return ino if op in ("mkdir", "create") else True

    def run(self, op: str, items: list[Item], batched: bool) -> list:
        results = [_capture(lambda: self._one(op, item, not batched)) for item in items]
        if batched:
            self.engine.wait_durable()
        return results

    def resolve(self, parent, name: str):
        return self._ino(parent, name)

    def close(self) -> None:
        self.engine.close()


class EchoTarget:
    """Every request is one gRPC Echo: the cost of a call that does no metadata work."""

    def __init__(self, client) -> None:
        self.client = client
        self.root = ROOT_INO
        self._handles = itertools.count(ROOT_INO + 1)

    def run(self, op: str, items: list[Item], batched: bool) -> list:
        result = _capture(lambda: self.client.echo(b""))
        if isinstance(result, Exception):
            return [result] * len(items)
        return [next(self._handles) if op in ("mkdir", "create") else True for _ in items]

    def resolve(self, parent, name: str):
        return next(self._handles)

    def close(self) -> None:
        self.client.close()


def _capture(fn: Callable):
    try:
        return fn()
    except Exception as exc:   # a failed operation is a result to count, not a crash
        return exc


def _first_error(results: list):
    return next((r for r in results if isinstance(r, Exception)), results[0])


def _handle(result):
    """Entries become their inode number; other results pass through."""
    ino = getattr(result, "ino", None)
    return result if ino is None or isinstance(result, Exception) else ino


def open_target(spec: TargetSpec):
    if spec.kind == "localfs":
        return LocalFsTarget(spec.where, spec.write_bytes)
    if spec.kind == "raw":
        return RawTarget(spec.where, spec.write_bytes)
    if spec.kind == "inproc":
        from metabench.inproc import InprocClient
        return NamespaceTarget(InprocClient(spec.where), spec.write_bytes)
    from metaserver.client import Client
    client = Client(spec.where, timeout=spec.timeout, token=spec.token or None)
    if spec.kind == "echo":
        return EchoTarget(client)
    return NamespaceTarget(client, spec.write_bytes)
