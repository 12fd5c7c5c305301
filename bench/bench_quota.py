"""Quota benchmark (not a test): the create rate with and without a directory quota.

    .venv/bin/python bench/bench_quota.py [--rounds 10] [--per-round 500]

In-process, through the Runner, on two RocksDB stores in a temporary directory: one
without any quota; one where directory b has a quota and directory c has none (a
quota anywhere makes every mutation look for quota'd ancestors). Three cases, creates
in a, b and c, are interleaved round by round, so the machine's noise falls on all
alike. Prints each case's creates/s and its ratio to the store without quotas.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from engines import open_engine
from metaserver.runner import Runner, format_namespace


def _runner(path: str) -> Runner:
    engine = open_engine(f"rocksdb://{path}", create=True)
    format_namespace(engine)
    return Runner(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain, quotad = _runner(f"{tmp}/plain"), _runner(f"{tmp}/quota")
        a = plain.call("mkdir", parent=1, name=b"a").ino
        b = quotad.call("mkdir", parent=1, name=b"b").ino
        c = quotad.call("mkdir", parent=1, name=b"c").ino
        quotad.call("set_quota", ino=b, max_inodes=10 ** 9, max_bytes=1 << 50)
        cases = {"no quota anywhere": (plain, a), "quota on the parent": (quotad, b),
                 "no quota on the parent, one elsewhere": (quotad, c)}
        seconds = dict.fromkeys(cases, 0.0)
        for round_ in range(args.rounds):
            for label, (runner, parent) in cases.items():
                start = time.perf_counter()
                for i in range(args.per_round):
                    runner.call("create", parent=parent, name=b"f%d.%d" % (round_, i))
                seconds[label] += time.perf_counter() - start
        for runner in (plain, quotad):
            runner.engine.close()
    total = args.rounds * args.per_round
    base = total / seconds["no quota anywhere"]
    for label, spent in seconds.items():
        print(f"{label}: {total / spent:.0f} creates/s ({total / spent / base:.2f}x)")


if __name__ == "__main__":
    main()
