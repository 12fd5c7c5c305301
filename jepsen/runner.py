"""One run: set a deployment up, drive client processes and a nemesis against it for a
time limit, heal, observe the final state, check the history and write the results.

The run directory holds history.jsonl (written as it happens), results.json (what every
checker found), report.md and timeline.png. Client processes are threads, each with its
own Session and seeded call stream; the nemesis thread starts one fault at a time, holds
it, heals it, and leaves every fault healed before the final observations.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jepsen import checkers, report
from jepsen.client import Session, call, plain_result
from jepsen.deploy import DEPLOYMENTS
from jepsen.history import FINAL, INFO, NEMESIS, OK, Recorder
from jepsen.nemesis import NEMESES
from jepsen.workloads import READ, WORKLOADS, Generator, Setup
from metaserver.client import Client
from metaserver.types import ROOT_INO, FileType


@dataclass
class RunConfig:
    deploy: str
    workload: str = "mixed"
    nemeses: list[str] = field(default_factory=list)
    time_limit: float = 30.0
    seed: int = 0
    concurrency: int = 4
    max_ops: int = 0                  # stop once this many calls completed (0: time only)
    fault_every: tuple[float, float] = (2.0, 4.0)   # quiet seconds before each fault
    fault_hold: tuple[float, float] = (3.0, 6.0)    # seconds a fault stays on
    out: Path = Path("jepsen-runs")


class Run:
    def __init__(self, config: RunConfig, progress=sys.stderr) -> None:
        unknown = [n for n in config.nemeses if n not in NEMESES]
        if config.deploy not in DEPLOYMENTS or config.workload not in WORKLOADS or unknown:
            raise ValueError(f"unknown deployment {config.deploy!r}, workload "
                             f"{config.workload!r} or nemeses {unknown}: choose from "
                             f"{sorted(DEPLOYMENTS)}, {sorted(WORKLOADS)}, {sorted(NEMESES)}")
        self.config = config
        self.dir = config.out / (f"{config.deploy}-{config.workload}-"
                                 f"{'+'.join(config.nemeses) or 'none'}-{config.seed}-"
                                 f"{time.strftime('%Y%m%dT%H%M%S')}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.deployment = DEPLOYMENTS[config.deploy]()
        self.workload = WORKLOADS[config.workload]()
        self.recorder = Recorder(self.dir / "history.jsonl")
        self.progress = progress
        self._stop = threading.Event()
        self._rng = random.Random(config.seed)
        self._fault: str | None = None

    # --- the run ------------------------------------------------------------------------
    def run(self) -> dict:
        try:
            self.deployment.setup(self.dir / "deploy")
            self._setup_workload()
            self._drive()
            self.deployment.heal()
            self._observe_final()
        finally:
            self._stop.set()
            self.recorder.close()
            self.deployment.teardown()
        return self.check()

    def check(self) -> dict:
        """Run every checker on the saved history and write the results and report."""
        return check_dir(self.dir, config=vars(self.config) | {"out": str(self.config.out)})

    def _setup_workload(self) -> None:
        session = Session("setup", self.recorder)
        node, address = self._primary()
        try:
            self.workload.setup(Setup(lambda f, args: session.invoke(node, address, f, args)))
        finally:
            session.close()

    def _drive(self) -> None:
        generator = Generator(self.workload, self.config.seed)
        workers = [threading.Thread(target=self._worker, args=(generator, p), daemon=True)
                   for p in range(self.config.concurrency)]
        nemesis = threading.Thread(target=self._nemesis, daemon=True)
        deadline = time.monotonic() + self.config.time_limit
        for thread in (*workers, nemesis):
            thread.start()
        while time.monotonic() < deadline and any(w.is_alive() for w in workers) and not (
                self.config.max_ops and self.recorder.counts.total() >= self.config.max_ops):
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            self._report_progress(deadline)
        self._stop.set()
        for thread in (*workers, nemesis):
            thread.join(60)
        print(file=self.progress)

    def _worker(self, generator: Generator, process: int) -> None:
        session = Session(process, self.recorder)
        try:
            while not self._stop.is_set():
                call = generator.next(process)
                node, address = self._route(call.kind)
                session.invoke(node, address, call.f, call.args)
        finally:
            session.close()

    def _route(self, kind: str) -> tuple[str, str]:
        """Reads go to any server (a follower where there is one); writes to the
        primary or to a server that forwards them."""
        servers = self.deployment.servers()
        if kind == READ:
            followers = [s for s in servers if s[2] == "follower"]
            node, address, _ = self._rng.choice(followers or [s for s in servers
                                                              if s[2] != "deposed"])
            return node, address
        # A deposed primary (promoted over, not yet rejoined) gets writes too: it must
        # refuse them.
        primary = self.deployment.primary()
        writable = [s for s in servers if s[2] in ("server", "follower", "deposed")
                    or s[1] == primary]
        node, address, _ = self._rng.choice(writable)
        return node, address

    def _primary(self) -> tuple[str, str]:
        primary = self.deployment.primary()
        return next(((n, a) for n, a, _ in self.deployment.servers() if a == primary),
                    ("primary", primary))

    def _nemesis(self) -> None:
        names = self.config.nemeses
        if not names:
            return
        rng = random.Random(self.config.seed + 1)
        while not self._stop.wait(rng.uniform(*self.config.fault_every)):
            nemesis = NEMESES[rng.choice(names)]()
            self._fault = nemesis.name
            self._nemesis_op(nemesis.name, "start", lambda: nemesis.start(self.deployment, rng))
            self._stop.wait(max(rng.uniform(*self.config.fault_hold),
                                getattr(nemesis, "min_hold", 0.0)))
            self._nemesis_op(nemesis.name, "heal", lambda: nemesis.heal(self.deployment))
            self._fault = None

    def _nemesis_op(self, name: str, phase: str, action) -> None:
        try:
            value = action() or {}
        except Exception as exc:       # record what went wrong; the final heal follows
            value = {"failed": f"{type(exc).__name__}: {exc}"}
        self.recorder.record(NEMESIS, INFO, name, {"phase": phase, **value})

    def _report_progress(self, deadline: float) -> None:
        counts = self.recorder.counts
        left = max(0, deadline - time.monotonic())
        print(f"\r{self.config.deploy}/{self.config.workload}: {left:5.0f}s left  "
              f"ok {counts[OK]:6d}  fail {counts['fail']:5d}  info {counts[INFO]:4d}  "
              f"fault: {self._fault or '-':12s}", end="", file=self.progress, flush=True)

    # --- after the heal -----------------------------------------------------------------
    def _observe_final(self) -> None:
        node, address = self._primary()
        with Client(address, timeout=30) as client:
            for call in self.workload.finals():
                self._final(client, node, call.f, call.args)
            tree = _walk(client)
        self.recorder.record(FINAL, OK, "tree", {"result": tree}, node=node)
        self.recorder.record(FINAL, OK, "fsck", {"result": self.deployment.final_check()["fsck"]})

    def _final(self, client: Client, node: str, f: str, args: dict) -> None:
        self.recorder.record(FINAL, OK, f, {"args": args, "result": plain_result(
            call(client, f, args))}, node=node)


def _walk(client: Client) -> list[list]:
    """[path, ino, type, parent ino] for every entry reachable from the root."""
    entries, todo = [["/", ROOT_INO, int(FileType.DIRECTORY), ROOT_INO]], [("", ROOT_INO)]
    while todo:
        path, ino = todo.pop()
        for entry in client.readdir(ino):
            child = f"{path}/{entry.name.decode()}"
            entries.append([child, entry.ino, int(entry.type), ino])
            if entry.type == FileType.DIRECTORY:
                todo.append((child, entry.ino))
    return entries


def check_dir(run_dir: Path, config: dict | None = None) -> dict:
    """Check a run directory's history (again, offline): results.json and report.md."""
    from jepsen.history import read
    ops = read(run_dir / "history.jsonl")
    if config is None and (run_dir / "results.json").exists():
        config = json.loads((run_dir / "results.json").read_text()).get("config")
    results = checkers.check_all(ops)
    summary = {"config": config or {}, "valid": _valid(results), "checkers": results}
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    report.write(run_dir, ops, summary)
    return summary


def _valid(results: dict) -> bool | str:
    verdicts = [r.get("valid") for r in results.values()]
    if any(v is False for v in verdicts):
        return False
    return True if all(v is True for v in verdicts) else "unknown"
