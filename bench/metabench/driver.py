"""Run the workload on one target: start the client processes, show a progress bar per
phase (on a terminal), collect every process's outcome of every phase, and stop the
processes cleanly, or with one line saying why not."""

from __future__ import annotations

import multiprocessing
import os
import queue
import secrets
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metabench import tree, worker
from metabench.config import Config
from metabench.execute import Outcome
from metabench.phases import Phase, plan
from metabench.targets import TargetSpec

POLL_S = 0.1
JOIN_S = 30


class RunFailed(Exception):
    """The run could not go on; the message is one line."""


@dataclass
class RunResult:
    label: str
    phases: list[Phase]
    outcomes: list[list[Outcome]]      # [phase index][process]


def expected_items(config: Config, phase: Phase) -> int:
    """Items a phase would do without a stonewall, over all processes."""
    s = tree.from_config(config)
    if phase.kind == "tree":
        return s.total_dirs * (config.processes if config.unique_dir else 1)
    return s.items * config.processes


def run(config: Config, specs: list[TargetSpec], label: str, show_progress: bool,
        interleaved: list[list[tuple[str, TargetSpec]]] | None = None) -> RunResult:
    """Run every phase of the plan with one process per spec; process i also holds
    `interleaved[i]`, the (label, spec) of each baseline interleaved with the target."""
    ctx = multiprocessing.get_context("spawn")   # no fork under gRPC's threads
    barrier = ctx.Barrier(len(specs))
    results = ctx.Queue()
    progress = ctx.RawArray("q", 2 * len(specs))
    run_name = f"metabench.{os.getpid()}.{secrets.token_hex(4)}"
    procs = [ctx.Process(target=worker.main, daemon=True,
                         args=(rank, config, spec, barrier, results, progress, run_name,
                               interleaved[rank] if interleaved else []))
             for rank, spec in enumerate(specs)]
    for p in procs:
        p.start()
    ok = False
    try:
        outcomes = _collect(config, label, procs, results, progress, show_progress)
        ok = True
        return RunResult(label, plan(config), outcomes)
    finally:
        if not ok:
            barrier.abort()      # processes waiting at a barrier give up
        for p in procs:
            p.join(JOIN_S if ok else 5)
            if p.is_alive():
                p.terminate()
                p.join()


def _collect(config: Config, label: str, procs, results, progress,
             show_progress: bool) -> list[list[Outcome]]:
    phases = plan(config)
    outcomes: list[list[Outcome | None]] = [[None] * len(procs) for _ in phases]
    remaining = len(phases) * len(procs)
    bar = Progress(TextColumn("{task.description:24s}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True),
                   disable=not show_progress, transient=False)
    tasks: dict[int, int] = {}
    with bar:
        while remaining:
            try:
                message = results.get(timeout=POLL_S)
            except queue.Empty:
                message = None
            if message is not None:
                kind, rank, *rest = message
                if kind == "fatal":
                    raise RunFailed(f"{label}: client process {rank}: {rest[0]}")
                index, outcome = rest
                outcomes[index][rank] = outcome
                remaining -= 1
                _check_phase(label, phases[index], outcomes[index])
            else:
                _check_alive(procs)
            _show(bar, tasks, phases, outcomes, progress, config, label)
    return outcomes


def _check_phase(label: str, phase: Phase, outcomes: list[Outcome | None]) -> None:
    """A phase in which nothing at all succeeded means the target is not working."""
    if any(o is None for o in outcomes):
        return
    if sum(o.items for o in outcomes) == 0 and any(o.errors for o in outcomes):
        first = next(o.first_error for o in outcomes if o.errors)
        raise RunFailed(f"{label}: {phase.title.lower()} failed: {first}")


def _check_alive(procs) -> None:
    for rank, p in enumerate(procs):
        if p.exitcode not in (None, 0):
            raise RunFailed(f"client process {rank} died (exit code {p.exitcode})")


def _show(bar: Progress, tasks: dict[int, int], phases: list[Phase], outcomes, progress,
          config: Config, label: str) -> None:
    for index, phase in enumerate(phases):
        done_ranks = [o for o in outcomes[index] if o is not None]
        live = [progress[2 * r + 1] for r in range(len(outcomes[index]))
                if progress[2 * r] == index and outcomes[index][r] is None]
        if not done_ranks and not live:
            continue
        if index not in tasks:
            tasks[index] = bar.add_task(f"{label[:10]} {phase.title}",
                                        total=expected_items(config, phase))
        done = sum(o.items for o in done_ranks) + sum(live)
        finished = len(done_ranks) == len(outcomes[index])
        bar.update(tasks[index], completed=done,
                   total=done if finished else max(done, expected_items(config, phase)))
