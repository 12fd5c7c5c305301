"""Replication benchmark (not a test): follower apply rate, lag under a steady write load,
catch-up after a link cut, with latency added on the link by the fault proxy.

    .venv/bin/python bench/bench_replication.py [--records 50000] [--latency 0.05]
        [--cut-seconds 60] [--rate 2000] [--load-seconds 20]

Primary and follower are separate `metaserver serve` processes (RocksDB without fsync,
in a temp dir), the fault proxy runs in this process between them. Phases:
1. apply rate: a backlog of --records creates is written while the link is cut, then
   the link is restored; records/s = backlog / time to catch up.
2. lag: --rate creates/s for --load-seconds on the primary; every 50 ms the primary's
   newest sequence is noted, and the time until the follower reports it applied is its
   lag sample (p50/p99).
3. catch-up: the link is blackholed for --cut-seconds under the same load, then
   restored; seconds until the follower has everything written meanwhile.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # jepsen/

from jepsen.faultproxy import FaultProxy  # noqa: E402
from metaserver.client import Client  # noqa: E402
from metaserver.testing import free_port  # noqa: E402
from metaserver.testing.metaserver_process import (  # noqa: E402
    ServerProcess, format_store, status, wait_for)
from metaserver.types import ROOT_INO  # noqa: E402


def applied(follower: ServerProcess) -> int:
    return status(follower.address).applied_seq


def load(client: Client, parent: int, count: int, prefix: str, batch: int = 500) -> None:
    for first in range(0, count, batch):
        b = client.batch()
        for i in range(first, min(count, first + batch)):
            b.create(parent, f"{prefix}{i}")
        b.run()


def steady(client: Client, parent: int, rate: float, seconds: float, prefix: str,
           stop: threading.Event) -> None:
    """About `rate` creates/s, in batches of rate/20 every 50 ms, bounded in time."""
    per_tick = max(1, int(rate / 20))
    end, tick = time.monotonic() + seconds, 0
    while time.monotonic() < end and not stop.is_set():
        load(client, parent, per_tick, f"{prefix}{tick}-", per_tick)
        tick += 1
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--cut-seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--load-seconds", type=float, default=20)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-replication-")
    primary = ServerProcess(format_store(f"rocksdb+unsafe-nosync://{tmp}/primary")).start()
    proxy = FaultProxy(free_port(), primary.address).start()
    proxy.set(latency=args.latency)
    follower = ServerProcess(f"rocksdb+unsafe-nosync://{tmp}/follower",
                             follow=proxy.address).start()
    try:
        with Client(primary.address, timeout=120) as c:
            top = c.mkdir(ROOT_INO, "bench")
            # 1. apply rate on a backlog (creates: one record each, outside batches' atomics)
            proxy.set(blackhole=True)
            load(c, top.ino, args.records, "a")
            target = status(primary.address).last_seq
            start = time.monotonic()
            proxy.set(blackhole=False)
            proxy.reset()
            wait_for(lambda: applied(follower) >= target, timeout=600, what="backlog")
            apply_s = time.monotonic() - start
            print(f"apply: {args.records} records in {apply_s:.2f} s = "
                  f"{args.records / apply_s:,.0f} records/s (incl. reconnect, "
                  f"{args.latency * 1000:.0f} ms link latency)")

            # 2. lag at a steady load
            stop = threading.Event()
            writer = threading.Thread(target=steady, args=(c, top.ino, args.rate,
                                                           args.load_seconds, "s", stop))
            writer.start()
            lags, pending = [], []
            while writer.is_alive():
                now = time.monotonic()
                pending.append((status(primary.address).last_seq, now))
                done = applied(follower)
                lags += [now - t for seq, t in pending if seq <= done]
                pending = [(seq, t) for seq, t in pending if seq > done]
                time.sleep(0.05)
            writer.join()
            wait_for(lambda: applied(follower) >= status(primary.address).last_seq, 120)
            lags.sort()
            print(f"lag at ~{args.rate:.0f} creates/s: p50 {statistics.median(lags) * 1000:.0f} ms"
                  f" p99 {lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms ({len(lags)} samples,"
                  " sampling adds up to 50 ms)")

            # 3. catch-up after a cut under load
            proxy.set(blackhole=True)
            stop = threading.Event()
            steady(c, top.ino, args.rate, args.cut_seconds, "c", stop)
            target = status(primary.address).last_seq
            behind = target - applied(follower)
            start = time.monotonic()
            proxy.set(blackhole=False)
            proxy.reset()
            wait_for(lambda: applied(follower) >= target, timeout=600, what="catch-up")
            print(f"catch-up after a {args.cut_seconds:.0f} s cut: {behind} records in "
                  f"{time.monotonic() - start:.2f} s")
    finally:
        follower.stop()
        proxy.stop()
        primary.stop()


if __name__ == "__main__":
    main()
