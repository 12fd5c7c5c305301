"""The harness end to end, as CI runs it: every deployment under the mixed workload and a
short mix of its faults, checked with every checker. A run must find no anomaly, and
must really have exercised the deployment (acknowledged operations of every kind, the
faults applied and healed). Longer runs: `python -m jepsen run` (docs/jepsen.md)."""

from __future__ import annotations

import os

import pytest

from jepsen.deploy import DEPLOYMENTS
from jepsen.history import NEMESIS, OK, read
from jepsen.nemesis import applicable
from jepsen.runner import Run, RunConfig

SECONDS = float(os.environ.get("METASERVER_JEPSEN_SECONDS", "12"))


@pytest.mark.parametrize("deploy", sorted(DEPLOYMENTS))
def test_a_short_run_under_faults_finds_no_anomaly(deploy, tmp_path):
    nemeses = applicable(deploy)
    config = RunConfig(deploy=deploy, workload="mixed", nemeses=nemeses, time_limit=SECONDS,
                       seed=7, concurrency=3, fault_every=(1.0, 2.0), fault_hold=(2.0, 3.0),
                       out=tmp_path)
    try:
        run = Run(config)
    except RuntimeError as exc:        # a deployment whose packages are missing here
        pytest.skip(str(exc))
    summary = run.run()
    ops = read(run.dir / "history.jsonl")
    assert summary["valid"] is True, (run.dir / "report.md").read_text()
    acknowledged = {op.f for op in ops if op.type == OK and isinstance(op.process, int)}
    assert {"create", "setattr", "getattr", "rename", "link"} <= acknowledged
    faults = [op for op in ops if op.process == NEMESIS]
    assert faults and faults[-1].value["phase"] == "heal", faults
    assert (run.dir / "report.md").exists() and (run.dir / "timeline.png").stat().st_size
