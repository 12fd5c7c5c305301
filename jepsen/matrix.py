"""The long runs behind the results table: every deployment under each fault it supports
(and none), one run each, and a Markdown row per run with the command that repeats it."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from jepsen.deploy import DEPLOYMENTS
from jepsen.history import INFO, OK, read
from jepsen.nemesis import applicable
from jepsen.runner import Run, RunConfig

_HEADER = ("| deployment | fault | ops ok / fail / info | valid | anomalies | "
           "recovery after heal (s, max) | seconds | command |\n"
           "|---|---|---|---|---|---|---|---|\n")


def run_matrix(deploys: list[str], workload: str, ops: int, time_limit: float, seed: int,
               out: Path, table: Path) -> None:
    rows = []
    for deploy in deploys or sorted(DEPLOYMENTS):
        for nemesis in ["", *applicable(deploy)]:
            command = (f"python -m jepsen run --deploy {deploy} --workload {workload} "
                       f"--nemesis {shlex.quote(nemesis or '')} --ops {ops} "
                       f"--time-limit {time_limit:g} --seed {seed}")
            print(f"\n$ {command}")
            started = time.monotonic()
            try:
                run = Run(RunConfig(deploy=deploy, workload=workload,
                                    nemeses=[nemesis] if nemesis else [], time_limit=time_limit,
                                    seed=seed, max_ops=ops, out=out))
                summary = run.run()
            except Exception as exc:      # one broken run must not lose the others' rows
                rows.append(f"| {deploy} | {nemesis or 'none'} | - | error | "
                            f"{type(exc).__name__}: {exc} | - | - | `{command}` |")
                continue
            rows.append(_row(deploy, nemesis, run.dir, summary, time.monotonic() - started,
                             command))
            _write(table, rows)
    _write(table, rows)


def _row(deploy: str, nemesis: str, run_dir: Path, summary: dict, seconds: float,
         command: str) -> str:
    ops = [op for op in read(run_dir / "history.jsonl") if isinstance(op.process, int)]
    counts = {kind: sum(1 for op in ops if op.type == kind) for kind in (OK, "fail", INFO)}
    anomalies = {name: len(result.get("anomalies", []))
                 for name, result in summary["checkers"].items() if result.get("anomalies")}
    recovery = summary["checkers"].get("recovery", {}).get("max_seconds", "-")
    return (f"| {deploy} | {nemesis or 'none'} | {counts[OK]} / {counts['fail']} / "
            f"{counts[INFO]} | {summary['valid']} | {anomalies or 0} | {recovery} | "
            f"{seconds:.0f} | `{command}` |")


def _write(table: Path, rows: list[str]) -> None:
    table.write_text("# jepsen results\n\nWritten by `python -m jepsen matrix`; each row is "
                     "one run, its history in the run directory.\n\n" + _HEADER
                     + "\n".join(rows) + "\n", encoding="utf-8")
