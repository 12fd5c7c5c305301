"""SQL benchmark: the namespace on MariaDB against raw single-row transactions, one run.

    .venv/bin/python bench/bench_sql.py [--seconds 3] [--connections 8] [--json FILE]

Starts a private MariaDB (metaserver/testing/mariadb.py; fsync at every commit) unless
METASERVER_TEST_MYSQL_URL names a server. With the same number of client threads
(`--connections`, each with its own connection or client), measures per second:
  1. raw: single-row INSERT transactions (INSERT + COMMIT) and primary-key SELECTs,
     PyMySQL, one connection per thread, on a kv-shaped table;
  2. in process: Runner over the SQL engine: create (mknod), stat (getattr), rename
     (within the thread's own directory, like mdtest -u), each its own durable
     transaction;
  3. over gRPC: the same operations as unary calls from metaserver.client.Client to a
     `metaserver serve --meta-url mysql+pymysql://...` child process;
  4. scale-out: for each count in --servers, that many `metaserver serve` processes over
     one database and --connections client processes spread over them, each creating
     files in a directory of its own (bench_scaleout.rate): the total creates/s.
and prints each rate with its ratio to the raw INSERT (or SELECT) rate. Every phase is
bounded by --seconds and a count cap. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pymysql
import sqlalchemy as sa

from bench_scaleout import rate as scaleout_rate
from engines import open_engine
from metaserver.client import Client
from metaserver.runner import Runner, format_namespace
from metaserver.testing import free_port
from metaserver.testing.mariadb import MariaDB
from metaserver.testing.metaserver_process import ServerProcess, format_store

COUNT_CAP = 1_000_000


def parallel_rate(threads: int, seconds: float, step: Callable[[int, int], bool]) -> float:
    """Run step(thread, i) for i = 0, 1, ... in each thread until `seconds` pass, the
    cap is hit, or step returns False (nothing left); returns steps/s over all threads."""
    done = [0] * threads
    start = time.perf_counter()

    def loop(t: int) -> None:
        for i in range(COUNT_CAP // threads):
            if time.perf_counter() - start >= seconds or step(t, i) is False:
                return
            done[t] += 1

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.perf_counter() - start)


def raw(url: str, threads: int, seconds: float) -> dict:
    u = sa.make_url(url)
    conns = [pymysql.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                             database=u.database) for _ in range(threads)]
    with conns[0].cursor() as cur:
        cur.execute("CREATE TABLE raw (k VARBINARY(512) PRIMARY KEY, v LONGBLOB NOT NULL)")
    value = b"v" * 100

    def insert(t: int, i: int) -> None:
        with conns[t].cursor() as cur:
            cur.execute("INSERT INTO raw VALUES (%s, %s)", (b"r%d.%d" % (t, i), value))
        conns[t].commit()

    def select(t: int, i: int) -> None:
        with conns[t].cursor() as cur:
            cur.execute("SELECT v FROM raw WHERE k = %s", (b"r%d.%d" % (t, i % 100),))
            cur.fetchall()
        conns[t].commit()

    parallel_rate(threads, seconds, lambda t, i: insert(t, -i - 1))     # warm-up
    results = {"insert_txn_per_s": parallel_rate(threads, seconds, insert),
               "pk_select_per_s": parallel_rate(threads, seconds, select)}
    for c in conns:
        c.close()
    return results


class Workload:
    """create / stat / rename phases over `call(thread, op, request_id, **args)`, after
    a warm-up (a fresh server is several times slower in its first seconds)."""

    def __init__(self, call: Callable, threads: int, seconds: float) -> None:
        self.call, self.threads, self.seconds = call, threads, seconds

    def run(self, dirs: list[int]) -> dict:
        made: list[list[int]] = [[] for _ in range(self.threads)]

        def create(t: int, i: int) -> None:
            made[t].append(self.call(t, "create", b"c%d.%d" % (t, i),
                                     parent=dirs[t], name=b"f%d" % i).ino)

        def stat(t: int, i: int) -> None:
            self.call(t, "getattr", b"", ino=made[t][i % len(made[t])])

        def rename(t: int, i: int) -> bool:
            if i >= len(made[t]):
                return False
            self.call(t, "rename", b"m%d.%d" % (t, i), parent=dirs[t], name=b"f%d" % i,
                      new_parent=dirs[t], new_name=b"g%d" % i)
            return True

        warm = [self.call(0, "mkdir", b"warm", parent=1, name=b"warm-%d" % dirs[0]).ino]
        parallel_rate(self.threads, self.seconds, lambda t, i: self.call(
            t, "create", b"w%d.%d.%d" % (dirs[0], t, i), parent=warm[0], name=b"w%d.%d" % (t, i)))
        return {f"{name}_per_s": parallel_rate(self.threads, self.seconds, fn)
                for name, fn in (("create", create), ("stat", stat), ("rename", rename))}


def in_process(url: str, threads: int, seconds: float) -> dict:
    engine = open_engine(url, create=True)
    format_namespace(engine)
    runner = Runner(engine)
    dirs = [runner.call("mkdir", b"ip%d" % t, parent=1, name=b"ip%d" % t).ino
            for t in range(threads)]
    try:
        def call(t: int, op: str, rid: bytes, **args):
            return runner.call("mknod" if op == "create" else op, rid, **args)
        return Workload(call, threads, seconds).run(dirs)
    finally:
        engine.close()


def over_grpc(url: str, threads: int, seconds: float) -> dict:
    address = f"127.0.0.1:{free_port()}"
    exe = os.path.join(os.path.dirname(sys.executable), "metaserver")
    subprocess.run([exe, "format", "--meta-url", url], check=True, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([exe, "serve", "--meta-url", url, "--listen", address],
                            stderr=subprocess.DEVNULL)
    clients = [Client(address) for _ in range(threads)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                clients[0].statfs()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        dirs = [clients[0].mkdir(1, f"rpc{t}").ino for t in range(threads)]

        def call(t: int, op: str, _rid: bytes, **args):
            return clients[t].call(op, **args)     # the client adds request ids itself

        return Workload(call, threads, seconds).run(dirs)
    finally:
        for c in clients:
            c.close()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def scale_out(url: str, servers: int, clients: int, seconds: float) -> float:
    """Total creates/s of `clients` processes over `servers` serve processes on one
    formatted database at `url`."""
    format_store(url)
    procs = [ServerProcess(url).start() for _ in range(servers)]
    try:
        addresses = [p.address for p in procs]
        scaleout_rate(addresses, clients, 1.0)                  # warm-up
        return scaleout_rate(addresses, clients, seconds)
    finally:
        for p in procs:
            p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase")
    parser.add_argument("--connections", type=int, default=8, help="client threads")
    parser.add_argument("--driver", default="pymysql", help="pymysql or mysqldb")
    parser.add_argument("--servers", default="1,2,4",
                        help="serve processes over one database in the scale-out section")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    counts = [int(n) for n in args.servers.split(",") if n]
    external = os.environ.get("METASERVER_TEST_MYSQL_URL")
    server = MariaDB(external)
    try:
        def database() -> str:
            return server.new_database().replace("+pymysql", f"+{args.driver}")
        figures = {"connections": args.connections, "driver": args.driver,
                   "raw": raw(server.new_database(), args.connections, args.seconds),
                   "in_process": in_process(database(), args.connections, args.seconds),
                   "grpc": over_grpc(database(), args.connections, args.seconds),
                   "scale_out_creates_per_s": {
                       n: scale_out(database(), n, args.connections, args.seconds)
                       for n in counts}}
    finally:
        server.stop()
    insert, select = figures["raw"]["insert_txn_per_s"], figures["raw"]["pk_select_per_s"]
    print(f"MariaDB, {args.connections} connections/threads, driver {args.driver}")
    print(f"  raw single-row INSERT txn/s {insert:10.0f}")
    print(f"  raw primary-key SELECT/s    {select:10.0f}")
    for section in ("in_process", "grpc"):
        for op in ("create", "stat", "rename"):
            value = figures[section][f"{op}_per_s"]
            base, label = (select, "SELECT") if op == "stat" else (insert, "INSERT")
            print(f"  {section:10s} {op:6s}/s      {value:10.0f}   {value / base:5.2f}x raw {label}")
    for n, value in figures["scale_out_creates_per_s"].items():
        print(f"  {n} server(s), {args.connections} client processes, create/s "
              f"{value:8.0f}   {value / insert:5.2f}x raw INSERT")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
