"""Memory soak (not a test): the server's resident memory while its namespace grows.

    .venv/bin/python bench/bench_soak.py [--first 100000] [--last 1000000] [--dirs 16]
        [--batch 1000] [--time-limit 3600] [--json FILE] [--quick]

Starts `metaserver serve` from this checkout on durable RocksDB in a temp dir, on a
loopback port (after `metaserver format`, where the CLI has it), creates files through
the client library in Batch RPCs spread over --dirs directories, and samples the
server's RSS (psutil, by its PID) after --first creates, at tenths of --last, then
after a readdir of every directory and after a statfs. Prints the table, the growth
from the first sample to the last as a ratio (flat is the goal: at most 1.10) and the
peak (RocksDB's memtable makes RSS a sawtooth of up to ~64 MiB). --time-limit stops the creating early (the table says so); --quick is a
2k/10k run for the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import grpc
import psutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metaserver.client import Client  # noqa: E402
from metaserver.types import ROOT_INO  # noqa: E402

PROG = "bench_soak"
GOAL_GROWTH = 1.10
START_TIMEOUT_S = 60
# The server runs this checkout's code, whatever is installed in the venv.
_SERVER_MAIN = "import sys; from metaserver.cli.serve import main; sys.argv[0] = 'metaserver'; main()"


class BenchError(Exception):
    """A failure that ends the run with one line."""


@dataclass
class Sample:
    label: str
    creates: int
    rss_bytes: int
    elapsed_s: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`metaserver serve` on RocksDB in `data_dir`, its output in `log_path`."""

    def __init__(self, data_dir: pathlib.Path, log_path: pathlib.Path) -> None:
        self.meta_url = f"rocksdb://{data_dir}"
        self.address = f"127.0.0.1:{_free_port()}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", _SERVER_MAIN, *args]

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log_path, "ab") as log:
            formatted = subprocess.run(self._command("format", "--meta-url", self.meta_url),
                                       stdout=log, stderr=log, env=env, timeout=60)
            # Exit 2 is a usage error: a CLI without `format`, whose serve formats itself.
            if formatted.returncode not in (0, 2):
                raise BenchError(f"metaserver format failed; see {self.log_path}")
            self.proc = subprocess.Popen(
                self._command("serve", "--meta-url", self.meta_url, "--listen", self.address),
                stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.address) as channel:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"server exited with {self.proc.returncode}; "
                                     f"see {self.log_path}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return self
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        raise BenchError(f"server not up after {START_TIMEOUT_S} s") from None

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL; by PID, only this server."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def checkpoints(first: int, last: int) -> list[int]:
    """`first`, then the tenths of `last` above it (a leak shows as a steady climb)."""
    return sorted({first} | {last * k // 10 for k in range(1, 11) if last * k // 10 > first})


def soak(server: Server, first: int, last: int, dirs: int, batch_size: int,
         time_limit: float) -> tuple[list[Sample], bool]:
    """Create `last` files (fewer if `time_limit` runs out) sampling RSS; returns the
    samples and whether the time limit stopped the creating."""
    start = time.monotonic()
    samples: list[Sample] = []

    def sample(label: str, creates: int) -> None:
        samples.append(Sample(label, creates, server.rss(), time.monotonic() - start))

    with Client(server.address, timeout=120) as client:
        top = client.mkdir(ROOT_INO, "soak")
        parents = [client.mkdir(top.ino, f"d{i}").ino for i in range(dirs)]
        marks = checkpoints(first, last)
        created, stopped = 0, False
        while created < last:
            if time.monotonic() - start > time_limit:
                stopped = True
                break
            count = min(batch_size, last - created, marks[0] - created)
            batch = client.batch()
            for i in range(created, created + count):
                batch.create(parents[i % dirs], f"f{i}")
            failed = [r for r in batch.run() if isinstance(r, OSError)]
            if failed:
                raise BenchError(f"{len(failed)} creates failed, first: {failed[0]}")
            created += count
            if created == marks[0]:
                sample(f"{created:,} creates", created)
                marks.pop(0)
        if stopped:
            sample(f"{created:,} creates (time limit)", created)
        listed = sum(1 for ino in parents for _ in client.readdir(ino))
        if listed != created:
            raise BenchError(f"readdir listed {listed} files, {created} were created")
        sample("after readdir of all", created)
        used = client.statfs().used_inodes
        if used < created:
            raise BenchError(f"statfs counts {used} inodes, {created} were created")
        sample("after statfs", created)
    return samples, stopped


def growth(samples: list[Sample]) -> float:
    return samples[-1].rss_bytes / samples[0].rss_bytes


def report(samples: list[Sample], stopped: bool) -> str:
    lines = [f"{'checkpoint':<32} {'creates':>10} {'RSS MiB':>9} {'elapsed s':>10}"]
    lines += [f"{s.label:<32} {s.creates:>10} {s.rss_bytes / 2**20:>9.1f} {s.elapsed_s:>10.1f}"
              for s in samples]
    ratio, peak = growth(samples), max(samples, key=lambda s: s.rss_bytes)
    lines.append(f"growth {samples[0].label} -> {samples[-1].label}: {ratio:.3f}x "
                 f"({(ratio - 1) * 100:+.1f}%; goal <= {GOAL_GROWTH:.2f}x); "
                 f"peak {peak.rss_bytes / 2**20:.1f} MiB at {peak.label}")
    if stopped:
        lines.append("stopped early by --time-limit")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=100_000, metavar="N",
                        help="creates before the first RSS sample (default 100000)")
    parser.add_argument("--last", type=int, default=1_000_000, metavar="N",
                        help="creates in all (default 1000000)")
    parser.add_argument("--dirs", type=int, default=16, help="directories the files go to")
    parser.add_argument("--batch", type=int, default=1000, help="creates per Batch RPC")
    parser.add_argument("--time-limit", type=float, default=3600, metavar="SECONDS",
                        help="stop creating after this long (default 3600)")
    parser.add_argument("--json", metavar="FILE", help="also write the samples as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: --first 2000 --last 10000 --dirs 4 --batch 500")
    args = parser.parse_args(argv)
    if args.quick:
        args.first, args.last, args.dirs, args.batch = 2000, 10_000, 4, 500
    if not 0 < args.first <= args.last or args.dirs < 1 or args.batch < 1:
        parser.error("need 0 < --first <= --last, --dirs >= 1 and --batch >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-soak-"))
    server = Server(tmp / "data", tmp / "server.log")
    try:
        server.start()
        samples, stopped = soak(server, args.first, args.last, args.dirs, args.batch,
                                args.time_limit)
    except (BenchError, OSError) as exc:
        server.stop()      # its data and log stay in `tmp`, to look at
        print(f"{PROG}: {server.address}: {exc}", file=sys.stderr)
        return 1
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print(report(samples, stopped))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"command": " ".join(sys.argv), "meta_url": "rocksdb (durable)",
                       "first": args.first, "last": args.last, "dirs": args.dirs,
                       "batch": args.batch, "stopped_by_time_limit": stopped,
                       "growth": growth(samples),
                       "peak_rss_bytes": max(s.rss_bytes for s in samples),
                       "samples": [asdict(s) for s in samples]}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
