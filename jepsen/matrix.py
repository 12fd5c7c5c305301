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
            command = _command(deploy, workload, nemesis, ops, time_limit, seed)
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


def recheck(out: Path, table: Path) -> None:
    """Check every run directory under `out` again (with today's checkers) and write
    the table from them, in the order the runs were made."""
    from jepsen.runner import check_dir
    rows = []
    for run_dir in sorted((d for d in out.iterdir() if (d / "history.jsonl").exists()),
                          key=lambda d: d.stat().st_mtime):
        summary = check_dir(run_dir)
        c = summary["config"]
        nemesis = ",".join(c.get("nemeses", []))
        ops = read(run_dir / "history.jsonl")
        rows.append(_row(c["deploy"], nemesis, run_dir, summary, ops[-1].time if ops else 0,
                         _command(c["deploy"], c["workload"], nemesis, c["max_ops"],
                                  c["time_limit"], c["seed"])))
        print(rows[-1])
    _write(table, rows)


def _command(deploy: str, workload: str, nemesis: str, ops: int, time_limit: float,
             seed: int) -> str:
    return (f"python -m jepsen run --deploy {deploy} --workload {workload} "
            f"--nemesis {shlex.quote(nemesis or '')} --ops {ops} "
            f"--time-limit {time_limit:g} --seed {seed}")


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
