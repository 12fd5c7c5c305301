"""dump/load benchmark: seconds per million files on RocksDB and MariaDB, one run.

    .venv/bin/python bench/bench_dump.py [--files 200000] [--build-seconds 300] [--json FILE]

Builds a namespace of --files empty files (directories of 10,000; Runner.call_atomic
batches of 256 mknods) on RocksDB, then times, each one streaming pass:
  1. dump RocksDB -> file (gzip level 1),
  2. verify the file alone (what load does first with a file: read and check it all),
  3. load the file into a fresh RocksDB (verify + load; fsync at every commit),
  4. load the same file into a fresh MariaDB database (the migration),
  5. dump MariaDB -> file.
Both directions are linear in keys (about two per file: attr and entry), so seconds per
million files are extrapolated from --files; the build stops early, with the files it
has, after --build-seconds. Starts a private MariaDB (metaserver/testing/mariadb.py) unless
METASERVER_TEST_MYSQL_URL names a server. Everything stays on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from engines import open_engine
from metaserver.dump import dump, load, verify
from metaserver.runner import Runner, format_namespace
from metaserver.types import ROOT_INO
from metaserver.testing.mariadb import MariaDB

FILES_PER_DIR = 10_000
BATCH = 256


def build(url: str, files: int, seconds: float) -> int:
    """`files` empty files (fewer if `seconds` run out); returns how many."""
    engine = open_engine(url, create=True)
    format_namespace(engine)
    runner = Runner(engine)
    start, made = time.perf_counter(), 0
    try:
        while made < files and time.perf_counter() - start < seconds:
            d = runner.call("mkdir", parent=ROOT_INO, name=b"d%04d" % (made // FILES_PER_DIR)).ino
            for first in range(made, min(files, made + FILES_PER_DIR), BATCH):
                runner.call_atomic([("mknod", {"parent": d, "name": b"f%07d" % i})
                                    for i in range(first, min(files, first + BATCH,
                                                              made + FILES_PER_DIR))])
            made = min(files, made + FILES_PER_DIR)
    finally:
        engine.close()
    return made


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def on_file(url: str, path: str, mode: str, step):
    """step(engine, file) with the engine at `url` (created for a load) and `path` open
    in `mode`."""
    engine = open_engine(url, create=True)
    try:
        with open(path, mode) as file:
            return step(engine, file)
    finally:
        engine.close()


def verify_file(path: str):
    with open(path, "rb") as src:
        return verify(src)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--build-seconds", type=float, default=300.0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-dump-")
    server = MariaDB(os.environ.get("METASERVER_TEST_MYSQL_URL"))
    try:
        source, copy = f"rocksdb://{work}/source", f"rocksdb://{work}/copy"
        build_s, files = timed(lambda: build(source, args.files, args.build_seconds))
        maria = server.new_database()
        phases = {
            "dump_rocksdb": lambda: on_file(source, f"{work}/rocksdb.dump", "wb", dump),
            "verify_file": lambda: verify_file(f"{work}/rocksdb.dump"),
            "load_rocksdb": lambda: on_file(copy, f"{work}/rocksdb.dump", "rb", load),
            "load_mariadb": lambda: on_file(maria, f"{work}/rocksdb.dump", "rb", load),
            "dump_mariadb": lambda: on_file(maria, f"{work}/mariadb.dump", "wb", dump),
        }
        seconds, summaries = {}, {}
        for name, run in phases.items():
            seconds[name], summaries[name] = timed(run)
    finally:
        server.stop()
    first = summaries["dump_rocksdb"]
    print(f"$ {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"{files} files built on RocksDB in {build_s:.1f} s: {first.keys} keys, "
          f"{first.bytes / 1e6:.1f} MB, dump file {first.file_bytes / 1e6:.1f} MB")
    print(f"{'phase':14s} {'seconds':>8s} {'s per 1M files':>15s} {'keys/s':>10s}")
    for name, s in seconds.items():
        print(f"{name:14s} {s:8.2f} {s * 1e6 / files:15.1f} {first.keys / s:10.0f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"files": files, "keys": first.keys, "bytes": first.bytes,
                       "file_bytes": first.file_bytes, "build_seconds": build_s,
                       "seconds": seconds,
                       "seconds_per_million_files": {k: v * 1e6 / files for k, v in seconds.items()}},
                      out, indent=2)


if __name__ == "__main__":
    main()
