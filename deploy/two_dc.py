"""Two "datacenters" on one machine: primary on MariaDB (dc A), follower on RocksDB
(dc B), a fault proxy between them; every process on loopback, stopped by its PID.

    deploy/two-dc.sh [--latency 0.05]      # Ctrl-C stops everything it started

MariaDB: METASERVER_MYSQL_URL (mysql+pymysql://user:pass@host:port/db) or a private
server (tests/mariadb.py). Fault control: `echo "blackhole 1" | nc 127.0.0.1 CONTROL`
(also `latency 0.2`, `drop_replies 1`, `reset`).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import format_url, free_port  # noqa: E402
from replication_helpers import ServerProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="two-dc-")
    mariadb = None
    url = os.environ.get("METASERVER_MYSQL_URL")
    if not url:
        from mariadb import MariaDB
        mariadb = MariaDB()
        url = format_url(mariadb.new_database())
    proxy_port, control = free_port(), free_port()
    started = []
    try:
        primary = ServerProcess(url, log_path=f"{work}/primary.log").start()
        started.append(primary)
        proxy = subprocess.Popen([sys.executable, "-m", "jepsen.faultproxy",
                                  f"127.0.0.1:{proxy_port}", primary.address,
                                  "--control", str(control), "--latency", str(args.latency)],
                                 cwd=ROOT)
        follower = ServerProcess(f"rocksdb://{work}/follower", follow=f"127.0.0.1:{proxy_port}",
                                 log_path=f"{work}/follower.log").start()
        started.append(follower)
        print(f"dc A primary  {primary.address}  (MariaDB)\n"
              f"dc B follower {follower.address}  (RocksDB {work}/follower)\n"
              f"link proxy    127.0.0.1:{proxy_port}, control port {control}\n"
              f"logs          {work}/*.log\nCtrl-C stops everything.", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        for server in reversed(started):
            server.stop()
        if "proxy" in locals():
            proxy.terminate()
            proxy.wait(10)
        if mariadb is not None:
            mariadb.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
