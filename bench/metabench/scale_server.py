"""The server side of `metabench scale`: a child process running the gRPC server on the
namespace being grown, which also fills it in process (no RPC) on request, reports its
engine's disk usage, and times `metactl dump` of it (the server stopped meanwhile: an
embedded engine admits one process). Its RSS, read from outside, is the server's memory."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

FILL_CHUNK = 256        # creates per transaction: an atomic Batch's limit
PROGRESS_EVERY_S = 10
DUMP_TIMEOUT_S = 3600


def _serve(url: str, conn) -> None:
    from metaserver.service import ServerConfig, StartError, start
    config = ServerConfig(meta_url=url, listen="127.0.0.1:0")
    try:
        running = start(config)
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
            elif command == "dump" and url.startswith("memory:"):
                conn.send(("dumped", None, "an in-memory namespace cannot be dumped from "
                           "another process", running.address))
            elif command == "dump":
                running.stop()
                seconds, note = _dump(url)
                running = start(config)
                conn.send(("dumped", seconds, note, running.address))
    finally:
        running.stop()


def _dump(url: str) -> tuple[float | None, str]:
    """Seconds `metactl dump` takes to write the whole namespace (to /dev/null), and its
    summary line; None and why not when it failed."""
    metactl = os.path.join(os.path.dirname(sys.executable), "metactl")
    start = time.perf_counter()
    done = subprocess.run([metactl, "dump", "--meta-url", url, "-"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=DUMP_TIMEOUT_S)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines() or [""]
    if done.returncode != 0:
        return None, f"metactl dump failed: {lines[-1][:200]}"
    return seconds, lines[-1][:200]


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

    def dump(self) -> tuple[float | None, str]:
        """Time a dump; the server restarts after it, on a new address."""
        self._conn.send(("dump",))
        _, seconds, note, self.address = self._conn.recv()
        return seconds, note

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
