"""Fairness benchmark (not a test): a greedy client against a polite one, with and
without per-client limits.

    .venv/bin/python bench/bench_fairness.py [--seconds 10] [--rounds 3] [--limit 200]
        [--greedy-threads 16] [--polite-rate 50] [--engine memory://]

Two `metaserver serve` processes, one with limits and one without (one token store with
a `greedy` and a `polite` write token).
The polite client (this process, one thread) makes --polite-rate mkdir+getattr pairs per
second and times each call. The greedy client (another process, --greedy-threads
threads, the client library's default retry policy, so it backs off on EAGAIN; niced,
standing in for another machine) makes mkdirs as fast as it can. Three runs, each --seconds long:
1. polite alone, on the limited server (--client-ops-per-s --limit);
2. polite + greedy, on the limited server;
3. polite + greedy, on the server without limits (what the limits buy).
The three runs are repeated --rounds times, interleaved, so that the machine's own
noise (other processes) falls on all three alike; latencies are pooled per run kind.
Reported: the polite client's p50/p99 latency per run kind and p99 of run 2 over run 1,
and the greedy client's completed calls/s (held to about --limit in run 2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metaserver.client import Client
from metaserver.service.auth import Role, create_token
from metaserver.testing import free_port
from metaserver.types import ROOT_INO

METASERVER = os.path.join(os.path.dirname(sys.executable), "metaserver")


def serve(engine: str, store: str, limits: list[str], log: pathlib.Path) -> tuple:
    """Start `metaserver serve`; (process, address) once its health says SERVING."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([METASERVER, "serve", "--meta-url", engine, "--listen", address,
                             "--token-store", store, *limits],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return proc, address
            except grpc.RpcError:
                time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def greedy(address: str, token: str, threads: int, seconds: float, prefix: str,
           done: multiprocessing.Queue) -> None:
    """As many mkdirs as `threads` threads get through in `seconds`; puts (ok, gave up).
    Niced: on a real deployment the greedy client's CPU is another machine's, not the
    one the server and the polite client share here."""
    os.nice(10)
    client = Client(address, token=token)
    parent = client.mkdir(ROOT_INO, prefix).ino
    end = time.monotonic() + seconds
    counts = [0, 0]
    lock = threading.Lock()

    def run(n: int) -> None:
        i = 0
        while time.monotonic() < end:
            try:
                client.mkdir(parent, f"{n}-{i}")
                outcome = 0
            except BlockingIOError:     # still refused after the retry policy's attempts
                outcome = 1
            i += 1
            with lock:
                counts[outcome] += 1
    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 60)
    done.put(tuple(counts))


def polite(address: str, token: str, rate: float, seconds: float, prefix: str) -> list[float]:
    """`rate` mkdir+getattr pairs per second for `seconds`; every call's latency (s)."""
    latencies = []
    with Client(address, token=token) as client:
        parent = client.mkdir(ROOT_INO, prefix).ino
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            entry = client.mkdir(parent, f"p{i}")
            t1 = time.perf_counter()
            client.getattr(entry.ino)
            t2 = time.perf_counter()
            latencies += [t1 - t0, t2 - t1]
    return latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1000


def run(args, name: str, address: str, tokens: dict, with_greedy: bool) -> dict:
    """One run: the polite client's latencies and, with a greedy one, its counts."""
    result, tag = {"run": name}, f"{name}-{time.monotonic_ns()}"
    queue = multiprocessing.get_context("spawn").Queue()
    proc = None
    if with_greedy:
        proc = multiprocessing.get_context("spawn").Process(
            target=greedy, args=(address, tokens["greedy"], args.greedy_threads,
                                 args.seconds + 2, f"greedy-{tag}", queue))
        proc.start()
        time.sleep(2)       # the greedy client at full speed before measuring
    result["latencies"] = polite(address, tokens["polite"], args.polite_rate, args.seconds,
                                 f"polite-{tag}")
    result["greedy"] = (0, 0)
    if proc is not None:
        result["greedy"] = queue.get(timeout=args.seconds + 120)
        proc.join(60)
    return result


def pooled(args, name: str, runs: list[dict]) -> dict:
    latencies = [x for r in runs for x in r["latencies"]]
    ok, gave_up = (sum(r["greedy"][i] for r in runs) for i in (0, 1))
    return {"run": name, "rounds": len(runs), "polite_calls": len(latencies),
            "polite_p50_ms": round(p(latencies, 0.5), 2),
            "polite_p99_ms": round(p(latencies, 0.99), 2),
            "polite_p99_ms_per_round": [round(p(r["latencies"], 0.99), 2) for r in runs],
            "greedy_ok_per_s": round(ok / (len(runs) * (args.seconds + 2)), 1),
            "greedy_gave_up": gave_up}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=float, default=200, help="calls/s per client")
    parser.add_argument("--concurrent", type=int, default=4, help="concurrent calls per client")
    parser.add_argument("--greedy-threads", type=int, default=16)
    parser.add_argument("--polite-rate", type=float, default=50, help="pairs/s")
    parser.add_argument("--engine", default="memory://")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        store = os.path.join(tmp, "tokens.json")
        tokens = {who: create_token(store, [Role.WRITE], who)[1] for who in ("greedy", "polite")}
        log = pathlib.Path(tmp) / "server.log"
        limited = ["--client-ops-per-s", str(args.limit),
                   "--client-max-concurrent", str(args.concurrent)]
        kinds = (("alone", True, False), ("greedy+limits", True, True),
                 ("greedy, no limits", False, True))
        servers = {True: serve(args.engine, store, limited, log),
                   False: serve(args.engine, store, [], log)}
        try:
            runs = {name: [] for name, _, _ in kinds}
            for _ in range(args.rounds):
                for name, with_limits, with_greedy in kinds:
                    runs[name].append(run(args, name, servers[with_limits][1], tokens,
                                          with_greedy))
        finally:
            for proc, _ in servers.values():
                stop(proc)
        results = [pooled(args, name, runs[name]) for name, _, _ in kinds]
        for result in results:
            print(json.dumps(result), flush=True)
    alone, limited_run = results[0]["polite_p99_ms"], results[1]["polite_p99_ms"]
    print(f"polite p99 with a greedy client held to {args.limit:g}/s: {limited_run} ms, "
          f"alone {alone} ms: {limited_run / alone:.2f}x; without limits "
          f"{results[2]['polite_p99_ms']} ms ({results[2]['polite_p99_ms'] / alone:.2f}x); "
          f"greedy got {results[1]['greedy_ok_per_s']}/s limited, "
          f"{results[2]['greedy_ok_per_s']}/s unlimited")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
