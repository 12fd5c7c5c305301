"""Core benchmark: the namespace against its baselines, measured side by side in one run.

    .venv/bin/python bench/bench_core.py [--seconds 3] [--inflight 16] [--json FILE]

Reports (this machine is shared and noisy: read the ratios, not the absolute rates):
  1. in process, no RPC: namespace creates (Runner.call_many, batches of 100, each create
     its own transaction, durable, from one thread and from 4 at once; and
     Runner.call_atomic, 256 creates per transaction)
     vs raw rocksdict puts, and vs raw rocksdict WriteBatches holding the same keys a
     create writes (attr, dentry, usage delta, request record, change record);
  2. over gRPC to a `metaserver serve` child process (RocksDB, durable): unary Create vs
     unary Echo at the same concurrency;
  3. over gRPC: Batch RPCs of creates and of getattrs (stats).
Every loop is bounded by --seconds and a count cap. Traffic stays on 127.0.0.1.
BENCH_SCHEME=rocksdb+unsafe-nosync runs the served engine without fsync, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import grpc
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from engines import open_engine
from metaserver.runner import Runner, format_namespace
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

COUNT_CAP = 2_000_000
SCHEME = os.environ.get("BENCH_SCHEME", "rocksdb")


def rate(fn: Callable[[int], int], seconds: float) -> float:
    """Call fn(round) until `seconds` pass; fn returns items done; returns items/s."""
    done, elapsed = run_for(fn, seconds)
    return done / elapsed


def run_for(fn: Callable[[int], int], seconds: float) -> tuple[int, float]:
    """Call fn(round) until `seconds` pass (or COUNT_CAP items); (items, seconds taken)."""
    done, rounds = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and done < COUNT_CAP:
        done += fn(rounds)
        rounds += 1
    return done, time.perf_counter() - start


def threaded_rate(make: Callable[[int], Callable[[int], int]], seconds: float,
                  threads: int) -> float:
    """rate() of `threads` threads at once, thread k calling make(k)(round); items/s."""
    counts = [0] * threads

    def work(k: int) -> None:
        counts[k] = run_for(make(k), seconds)[0]

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def in_process(workdir: str, seconds: float) -> dict:
    raw = Rdict(os.path.join(workdir, "raw"), options=Options(raw_mode=True))
    value = b"v" * 61

    def raw_puts(r: int) -> int:
        for i in range(1000):
            raw.put(b"A%08dD%06d" % (r, i), value)
        return 1000

    sync = WriteOptions()
    sync.sync = True

    def raw_create_batches(r: int) -> int:
        # 100 creates' worth of keys per batch, one fsync: what call_many does per batch.
        for i in range(100):
            batch = WriteBatch(raw_mode=True)
            for key, size in ((b"I", 61), (b"D", 9), (b"U", 16), (b"R", 90), (b"L", 200)):
                batch.put(b"B%08d%06d" % (r, i) + key, b"x" * size)
            raw.write(batch, sync if i == 99 else WriteOptions())
        return 100

    results = {"raw_put_per_s": rate(raw_puts, seconds),
               "raw_create_equivalent_batches_per_s": rate(raw_create_batches, seconds)}
    raw.close()

    engine = open_engine(f"rocksdb://{os.path.join(workdir, 'ns')}", create=True)
    format_namespace(engine)
    runner = Runner(engine)
    parent = runner.call("mkdir", b"bench-dir", parent=1, name=b"bench").ino

    def creates(r: int) -> int:
        runner.call_many([("mknod", b"c%d.%d" % (r, i), {"parent": parent, "name": b"f%d.%d" % (r, i)})
                          for i in range(100)])
        return 100

    def atomic_creates(r: int) -> int:
        runner.call_atomic([("mknod", {"parent": parent, "name": b"a%d.%d" % (r, i)})
                            for i in range(256)], b"atomic-%d" % r)
        return 256

    results["namespace_create_batched_per_s"] = rate(creates, seconds)
    results["namespace_create_batched_4_threads_per_s"] = threaded_rate(
        lambda thread: lambda r: creates(1_000_000 * (thread + 1) + r), seconds, threads=4)
    results["namespace_create_atomic_batch_per_s"] = rate(atomic_creates, seconds)
    results["namespace_create_unary_durable_per_s"] = rate(
        lambda r: runner.call("mknod", b"u%d" % r, parent=parent, name=b"u%d" % r) and 1, seconds)
    runner.engine.close()
    results["ratio_create_vs_raw_put"] = (results["namespace_create_batched_per_s"]
                                          / results["raw_put_per_s"])
    results["ratio_create_vs_raw_same_writes"] = (results["namespace_create_batched_per_s"]
                                                  / results["raw_create_equivalent_batches_per_s"])
    results["ratio_atomic_create_vs_raw_put"] = (results["namespace_create_atomic_batch_per_s"]
                                                 / results["raw_put_per_s"])
    return results


class Server:
    """`metaserver serve` on a free loopback port, as a child process."""

    def __init__(self, data_dir: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        exe = os.path.join(os.path.dirname(sys.executable), "metaserver")
        subprocess.run([exe, "format", "--meta-url", f"{SCHEME}://{data_dir}"], check=True,
                       stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen([exe, "serve", "--meta-url", f"{SCHEME}://{data_dir}",
                                      "--listen", self.address], stderr=subprocess.DEVNULL)
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = pb_grpc.MetadataStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def pipelined(call: Callable[[int], grpc.Future], seconds: float, inflight: int) -> float:
    """Keep `inflight` calls outstanding for `seconds`; returns completed calls/s."""
    window: list[grpc.Future] = []
    done = issued = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and issued < COUNT_CAP:
        while len(window) < inflight:
            window.append(call(issued))
            issued += 1
        window.pop(0).result()
        done += 1
    for f in window:
        f.result()
        done += 1
    return done / (time.perf_counter() - start)


def over_grpc(workdir: str, seconds: float, inflight: int, batch: int) -> dict:
    server = Server(os.path.join(workdir, "served"))
    stub = server.stub
    try:
        parent = stub.Mkdir(pb.MkdirRequest(request_id=b"d", parent=1, name=b"d", mode=0o755)).ino
        results = {
            "echo_unary_per_s": pipelined(
                lambda i: stub.Echo.future(pb.EchoRequest(payload=b"x")), seconds, inflight),
            "create_unary_per_s": pipelined(
                lambda i: stub.Create.future(pb.CreateRequest(
                    request_id=b"u%d" % i, parent=parent, name=b"u%d" % i, mode=0o644)),
                seconds, inflight),
        }
        results["ratio_unary_create_vs_echo"] = (results["create_unary_per_s"]
                                                 / results["echo_unary_per_s"])
        def create_batch(i: int) -> grpc.Future:
            ops = [pb.Operation(create=pb.CreateRequest(
                request_id=b"b%d.%d" % (i, j), parent=parent, name=b"b%d.%d" % (i, j), mode=0o644))
                for j in range(batch)]
            return stub.Batch.future(pb.BatchRequest(ops=ops))

        results["create_batched_per_s"] = batch * pipelined(create_batch, seconds, 2)
        inos = [e.ino for e in stub.ReadDir(pb.ReadDirRequest(ino=parent, limit=batch)).entries]
        stat_ops = [pb.Operation(getattr=pb.GetAttrRequest(ino=ino)) for ino in inos]
        results["stat_batched_per_s"] = len(stat_ops) * pipelined(
            lambda i: stub.Batch.future(pb.BatchRequest(ops=stat_ops)), seconds, 2)
        results["batch_size"] = batch
        results["inflight"] = inflight
        return results
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--inflight", type=int, default=16, help="unary calls kept in flight")
    parser.add_argument("--batch", type=int, default=256, help="operations per Batch RPC")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="metaserver-bench-")
    try:
        figures = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                   "in_process": in_process(workdir, args.seconds),
                   "grpc": over_grpc(workdir, args.seconds, args.inflight, args.batch)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for section in ("in_process", "grpc"):
        print(f"[{section}]")
        for key, value in figures[section].items():
            print(f"  {key:40s} {value:12.2f}" if isinstance(value, float) else f"  {key:40s} {value:12d}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
