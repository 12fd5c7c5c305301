"""The server side of `metabench scale`: a child process running the gRPC server on the
namespace being grown, which also fills it in process (no RPC) on request and reports
its engine's disk usage. Its RSS, read from outside, is the server's memory."""

from __future__ import annotations

import multiprocessing
import time

FILL_CHUNK = 256        # creates per transaction: an atomic Batch's limit
PROGRESS_EVERY_S = 10


def _serve(url: str, conn) -> None:
    from metaserver.service import ServerConfig, StartError, start
    try:
        running = start(ServerConfig(meta_url=url, listen="127.0.0.1:0"))
    except StartError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("address", running.address))
    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                return
            if command == "disk":
                conn.send(("disk", running.engine.disk_usage()))
            elif command == "fill":
                conn.send(("filled", _fill(running.runner, conn, *args)))
    finally:
        running.stop()


def file_name(index: int) -> str:
    """The name of the grown directory's file number `index`, mdtest-like."""
    return f"file.mdtest.0.{index}"


def _fill(runner, conn, parent: int, first: int, end: int) -> float:
    """Create files first..end-1 in directory `parent`, FILL_CHUNK per transaction;
    returns the seconds it took. Progress goes to the parent every PROGRESS_EVERY_S."""
    start = last = time.perf_counter()
    for at in range(first, end, FILL_CHUNK):
        runner.call_atomic([("mknod", {"parent": parent, "name": file_name(i).encode()})
                            for i in range(at, min(at + FILL_CHUNK, end))])
        if time.perf_counter() - last > PROGRESS_EVERY_S:
            last = time.perf_counter()
            conn.send(("progress", at + FILL_CHUNK))
    return time.perf_counter() - start


class ScaleServer:
    """Handle on the child: its address and pid, and the fill/disk requests."""

    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(url, child), daemon=True)
        self.process.start()
        kind, value = self._conn.recv()
        if kind == "error":
            self.process.join()
            raise RuntimeError(value)
        self.address = value

    @property
    def pid(self) -> int:
        return self.process.pid

    def disk_usage(self) -> int | None:
        self._conn.send(("disk",))
        return self._conn.recv()[1]

    def fill(self, parent: int, first: int, end: int, on_progress=lambda done: None) -> float:
        self._conn.send(("fill", parent, first, end))
        while True:
            kind, value = self._conn.recv()
            if kind == "filled":
                return value
            on_progress(value)

    def stop(self) -> None:
        if self.process.is_alive():
            self._conn.send(("stop",))
            self.process.join(60)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
