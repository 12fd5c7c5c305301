"""Two "datacenters" on one machine: a primary (dc A), a follower on RocksDB (dc B) and a
fault proxy on the link between them; every process on loopback, each stopped by its PID.

    deploy/two-dc.sh [--primary-engine mariadb|rocksdb] [--latency 0.05]

The primary runs on MariaDB when there is one: METASERVER_MYSQL_URL
(mysql+pymysql://user:pass@host:port/db, formatted beforehand with `metaserver format`),
else a private server started here, which needs `mariadbd` installed. Without either
the script says so and the primary runs on RocksDB too. Ctrl-C or SIGTERM stops
everything it started, within seconds, and removes its temp dir (logs included).
Fault control: `echo "blackhole 1" | nc 127.0.0.1 CONTROL` (also `latency 0.2`,
`drop_replies 1`, `reset`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from metaserver.testing import free_port
from metaserver.testing.databases import ServerError, server_binary
from metaserver.testing.mariadb import MariaDB
from metaserver.testing.metaserver_process import ServerProcess, ServerStartError, format_store

PROG = "two-dc"
ROOT = pathlib.Path(__file__).resolve().parent.parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PROXY_STOP_S = 2


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: stop everything."""


class Failed(Exception):
    """A step failed: `what` and `why` make the one-line message."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


def _interrupt(signum, frame) -> None:
    raise Stopped


def _ignore(signum, frame) -> None:
    """While stopping, a second Ctrl-C must not cut the cleanup short. (A handler, not
    SIG_IGN: an ignored signal would be inherited by any child.)"""


def _primary_engine(choice: str | None, mysql_url: str | None) -> str:
    try:
        have_mariadb = bool(mysql_url) or bool(server_binary("mariadbd"))
    except FileNotFoundError:
        have_mariadb = False
    if choice == "mariadb" and not have_mariadb:
        raise Failed("mariadb", "mariadbd is not installed (apt-get install mariadb-server) "
                     "and METASERVER_MYSQL_URL is not set; try --primary-engine rocksdb")
    if choice is None and not have_mariadb:
        print(f"{PROG}: MariaDB (mariadbd) is not installed: the primary runs on RocksDB too",
              flush=True)
    return choice or ("mariadb" if have_mariadb else "rocksdb")


def _primary_url(engine: str, work: str, mysql_url: str | None,
                 stack: contextlib.ExitStack) -> str:
    if engine == "rocksdb":
        return format_store(f"rocksdb://{work}/primary")
    if mysql_url:
        return mysql_url
    mariadb = MariaDB()
    stack.callback(mariadb.stop)
    return format_store(mariadb.new_database())


def _start_proxy(listen_port: int, control_port: int, upstream: str, latency: float,
                 log_path: str, stack: contextlib.ExitStack) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        # A session of its own: a terminal's Ctrl-C reaches this script alone.
        proxy = subprocess.Popen(
            [sys.executable, "-m", "jepsen.faultproxy", f"127.0.0.1:{listen_port}", upstream,
             "--control", str(control_port), "--latency", str(latency)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def stop() -> None:
        proxy.terminate()
        try:
            proxy.wait(PROXY_STOP_S)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
    stack.callback(stop)
    return proxy


def _run(args: argparse.Namespace, work: str, stack: contextlib.ExitStack) -> None:
    """Start everything (each stop registered on `stack`), then wait for a signal."""
    mysql_url = os.environ.get("METASERVER_MYSQL_URL")
    engine = _primary_engine(args.primary_engine, mysql_url)
    try:
        primary = ServerProcess(_primary_url(engine, work, mysql_url, stack),
                                log_path=f"{work}/primary.log")
        stack.callback(primary.stop)    # before start: a signal may come while it starts
        primary.start()
    except (ServerError, ServerStartError, OSError) as exc:
        raise Failed(f"primary on {engine}", str(exc)) from None
    proxy_port, control_port = free_port(), free_port()
    proxy = _start_proxy(proxy_port, control_port, primary.address, args.latency,
                         f"{work}/proxy.log", stack)
    follower = ServerProcess(f"rocksdb://{work}/follower", follow=f"127.0.0.1:{proxy_port}",
                             log_path=f"{work}/follower.log")
    stack.callback(follower.stop)
    try:
        follower.start()
    except (ServerStartError, OSError) as exc:
        raise Failed("follower", str(exc)) from None
    where = "MariaDB" if engine == "mariadb" else f"RocksDB {work}/primary"
    print(f"dc A primary   {primary.address}  {where}  pid {primary.proc.pid}\n"
          f"link proxy     127.0.0.1:{proxy_port}  control port {control_port}  pid {proxy.pid}\n"
          f"dc B follower  {follower.address}  RocksDB {work}/follower  pid {follower.proc.pid}\n"
          f"work dir       {work}  (logs: *.log; removed on exit)\n"
          f"Ctrl-C stops everything.", flush=True)
    children = {"primary": primary.proc, "link proxy": proxy, "follower": follower.proc}
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise Failed(name, f"exited with {proc.returncode}")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="two-dc.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--primary-engine", choices=("mariadb", "rocksdb"),
                        help="default: mariadb when installed (or METASERVER_MYSQL_URL is "
                             "set), else rocksdb")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the proxy adds to each chunk, each way")
    args = parser.parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    work = tempfile.mkdtemp(prefix="two-dc-")
    code = 0
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        try:
            _run(args, work, stack)
        except Stopped:
            print(f"{PROG}: stopping", flush=True)
        except Failed as exc:
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            for signum in STOP_SIGNALS:
                signal.signal(signum, _ignore)
    return code


if __name__ == "__main__":
    sys.exit(main())
