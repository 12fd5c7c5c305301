"""Quota benchmark (not a test): the create rate with and without a directory quota,
and (with --tree-files) a summary against a walk of a bulk-built tree.

    .venv/bin/python bench/bench_quota.py [--rounds 10] [--per-round 500] [--tree-files 0]

In-process, through the Runner, on two RocksDB stores in a temporary directory: one
without any quota; one where directory b has a quota and directory c has none (a
quota anywhere makes every mutation look for quota'd ancestors). Three cases, creates
in a, b and c, are interleaved round by round, so the machine's noise falls on all
alike. Prints each case's creates/s and its ratio to the store without quotas.

--tree-files N bulk-builds a tree of N empty files, 10000 per directory (metaserver.bulk),
and times `summary` of the root (it adds up directory stats) against `check_tree` of the
root (the walk `metactl quota check` does: every entry and file attr), twice each.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from engines import open_engine
from metaserver import bulk
from metaserver.runner import Runner, format_namespace
from metaserver.types import ROOT_INO


def _runner(path: str) -> Runner:
    engine = open_engine(f"rocksdb://{path}", create=True)
    format_namespace(engine)
    return Runner(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=500)
    parser.add_argument("--tree-files", type=int, default=0)
    args = parser.parse_args()
    create_rates(args.rounds, args.per_round)
    if args.tree_files:
        summary_against_walk(args.tree_files)


def create_rates(rounds: int, per_round: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain, quotad = _runner(f"{tmp}/plain"), _runner(f"{tmp}/quota")
        a = plain.call("mkdir", parent=1, name=b"a").ino
        b = quotad.call("mkdir", parent=1, name=b"b").ino
        c = quotad.call("mkdir", parent=1, name=b"c").ino
        quotad.call("set_quota", ino=b, max_inodes=10 ** 9, max_bytes=1 << 50)
        cases = {"no quota anywhere": (plain, a), "quota on the parent": (quotad, b),
                 "no quota on the parent, one elsewhere": (quotad, c)}
        seconds = dict.fromkeys(cases, 0.0)
        for round_ in range(rounds):
            for label, (runner, parent) in cases.items():
                start = time.perf_counter()
                for i in range(per_round):
                    runner.call("create", parent=parent, name=b"f%d.%d" % (round_, i))
                seconds[label] += time.perf_counter() - start
        for runner in (plain, quotad):
            runner.engine.close()
    total = rounds * per_round
    base = total / seconds["no quota anywhere"]
    for label, spent in seconds.items():
        print(f"{label}: {total / spent:.0f} creates/s ({total / spent / base:.2f}x)")


def summary_against_walk(files: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bulk.build(f"{tmp}/db", bulk.TreeShape(files, 10_000))
        engine = open_engine(f"rocksdb://{tmp}/db")
        runner = Runner(engine)
        for _ in range(2):
            start = time.perf_counter()
            found = runner.call("summary", ino=ROOT_INO)
            middle = time.perf_counter()
            assert runner.call("check_tree", ino=ROOT_INO).ok
            end = time.perf_counter()
            print(f"{found}: summary {middle - start:.4f} s, walk {end - middle:.2f} s")
        engine.close()


if __name__ == "__main__":
    main()
