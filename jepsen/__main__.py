"""`python -m jepsen run ...` runs a deployment under a workload and faults and checks
the history; `python -m jepsen check RUN_DIR` checks a saved history again, offline."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fault-injection runs against metaserver deployments, with history checkers.")


@app.command()
def run(deploy: str = typer.Option(..., help="rocksdb | mariadb | follower | galera"),
        workload: str = typer.Option("mixed", help="register | set | rename | links | mixed"),
        nemesis: str = typer.Option("", help="comma-separated faults, empty for none"),
        time_limit: float = typer.Option(30.0, help="seconds of load"),
        seed: int = typer.Option(0, help="seeds the calls and the faults"),
        concurrency: int = typer.Option(4, help="client processes"),
        ops: int = typer.Option(0, help="stop after this many calls (0: at the time limit)"),
        out: Path = typer.Option(Path("jepsen-runs"), help="where run directories go")) -> None:
    """Run once; exit 1 if any checker found an anomaly."""
    from jepsen.runner import Run, RunConfig
    config = RunConfig(deploy=deploy, workload=workload,
                       nemeses=[n for n in nemesis.split(",") if n], time_limit=time_limit,
                       seed=seed, concurrency=concurrency, max_ops=ops, out=out)
    try:
        runner = Run(config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    summary = runner.run()
    _print(runner.dir, summary)


@app.command()
def matrix(ops: int = typer.Option(10_000, help="calls per run"),
           time_limit: float = typer.Option(300.0, help="seconds per run at most"),
           deploy: str = typer.Option("", help="comma-separated deployments (default: all)"),
           workload: str = typer.Option("mixed", help="the workload of every run"),
           seed: int = typer.Option(1, help="seed of every run"),
           out: Path = typer.Option(Path("jepsen-runs"), help="where run directories go"),
           table: Path = typer.Option(Path("bench/JEPSEN.md"), help="the results table"),
           recheck: bool = typer.Option(False, help="only check the runs under --out again "
                                                    "and rewrite the table")) -> None:
    """Every deployment x every fault it supports, one run each; a Markdown row per run."""
    from jepsen.matrix import recheck as recheck_runs, run_matrix
    if recheck:
        recheck_runs(out, table)
    else:
        run_matrix([d for d in deploy.split(",") if d], workload, ops, time_limit, seed, out,
                   table)


@app.command()
def check(run_dir: Path = typer.Argument(..., help="a run directory with history.jsonl")) -> None:
    """Check a saved history again and rewrite its results and report."""
    from jepsen.runner import check_dir
    if not (run_dir / "history.jsonl").is_file():
        raise typer.BadParameter(f"{run_dir} holds no history.jsonl")
    _print(run_dir, check_dir(run_dir))


def _print(run_dir: Path, summary: dict) -> None:
    for name, result in summary["checkers"].items():
        print(f"{name:14s} {result.get('valid')!s:8s} {len(result.get('anomalies', []))} anomalies")
    print(f"{'VALID' if summary['valid'] is True else 'NOT VALID'}: {run_dir}/report.md")
    if summary["valid"] is False:
        sys.exit(1)


if __name__ == "__main__":
    app()
