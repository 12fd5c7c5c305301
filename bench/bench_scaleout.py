"""Write scale-out: creates/s through one metaserver, then through three, over one database.

    .venv/bin/python bench/bench_scaleout.py [--db mariadb|galera|both] [--seconds 5]
        [--clients 6] [--json FILE]

For each database shape (one private MariaDB; a private 3-node MariaDB Galera cluster,
metaserver i on node i, committing on its own node and then all through the first
node that answers of `?commit_via=`), in one run: start `metaserver serve` processes over one
database, then `--clients` client processes (spread round-robin over the servers)
each create files in a directory of their own with unary calls for `--seconds`, and
the total rate is printed for 1 server and for 3 servers, with their ratio. Every
load loop is bounded by time and count. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

from metaserver.client import Client
from metaserver.testing.galera import GaleraCluster
from metaserver.testing.mariadb import MariaDB
from metaserver.testing.metaserver_process import ServerProcess, format_store

COUNT_CAP = 200_000


def _client(address: str, index: int, seconds: float, start_at: float, out) -> None:
    """One client process: mkdir its own directory, then creates until the time is up."""
    with Client(address, timeout=30) as c:
        d = c.mkdir(1, f"c{index}-{os.getpid()}").ino
        while time.time() < start_at:
            time.sleep(0.001)
        done, end = 0, start_at + seconds
        while time.time() < end and done < COUNT_CAP:
            c.create(d, f"f{done}")
            done += 1
        out.put((done, time.time() - start_at))


def rate(addresses: list[str], clients: int, seconds: float) -> float:
    """Total creates/s of `clients` processes spread over `addresses`."""
    ctx = multiprocessing.get_context("spawn")    # this process already runs gRPC: no fork
    out = ctx.Queue()
    start_at = time.time() + 2.0          # all connected before the clock starts
    procs = [ctx.Process(target=_client, args=(addresses[i % len(addresses)], i,
                                                           seconds, start_at, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    return sum(n for n, _ in results) / max(t for _, t in results)


def measure(urls: list[str], clients: int, seconds: float, log_dir: str,
            own_databases: list[str] | None = None) -> dict:
    """One server, then three (each on urls[i % len(urls)]), on one formatted database;
    with `own_databases`, also three servers each on a database of its own: what three
    servers reach when nothing at all is shared (the ceiling of any ordering design on
    this machine)."""
    format_store(urls[0])
    for url in own_databases or ():
        format_store(url)
    figures = {}
    shapes = [(1, urls), (3, urls)] + ([("3_unshared", own_databases)] if own_databases else [])
    for count, where in shapes:
        n = 3 if count == "3_unshared" else count
        servers = [ServerProcess(where[i % len(where)],
                                 log_path=os.path.join(log_dir, f"server{count}-{i}.log")).start()
                   for i in range(n)]
        try:
            rate([s.address for s in servers], clients, 1.0)       # warm-up
            figures[f"servers_{count}_creates_per_s"] = rate([s.address for s in servers],
                                                             clients, seconds)
        finally:
            for s in servers:
                s.stop()
    one = figures["servers_1_creates_per_s"]
    figures["ratio_3_to_1"] = figures["servers_3_creates_per_s"] / one
    if own_databases:
        figures["ratio_unshared_3_to_1"] = figures["servers_3_unshared_creates_per_s"] / one
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="both", choices=("mariadb", "galera", "both"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=6, help="client processes")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results = {}
    if args.db in ("mariadb", "both"):
        db = MariaDB()
        try:
            url = db.new_database()
            own = [db.new_database() for _ in range(3)]
            results["mariadb"] = measure([url], args.clients, args.seconds, db.dir, own)
        finally:
            db.stop()
    if args.db in ("galera", "both"):
        with GaleraCluster() as cluster:
            url = cluster.new_database()
            own = [cluster.urls(cluster.new_database())[i] for i in range(3)]
            results["galera"] = measure(cluster.urls(url), args.clients, args.seconds,
                                        cluster.dir, own)
            via = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
            url = cluster.new_database()
            results["galera_commit_via"] = measure(
                [f"{u}?commit_via={via}" for u in cluster.urls(url)], args.clients,
                args.seconds, cluster.dir)
    for shape, figures in results.items():
        line = (f"{shape:18s} 1 server {figures['servers_1_creates_per_s']:6.0f}/s   "
                f"3 servers {figures['servers_3_creates_per_s']:6.0f}/s   "
                f"ratio {figures['ratio_3_to_1']:.2f}")
        if "ratio_unshared_3_to_1" in figures:
            line += (f"   3 servers sharing nothing "
                     f"{figures['servers_3_unshared_creates_per_s']:6.0f}/s "
                     f"(ratio {figures['ratio_unshared_3_to_1']:.2f})")
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
