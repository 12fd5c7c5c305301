"""bench/bench_soak.py --quick runs end to end: a real server, its RSS table and the
growth ratio, on the terminal and as JSON. No memory or time threshold: those are the
benchmark's to report (bench/RESULTS.md), not a unit test's to judge."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench" / "bench_soak.py"


def test_quick_soak_reports_rss_samples_and_growth(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert (report["first"], report["last"]) == (2000, 10_000)
    assert not report["stopped_by_time_limit"]
    samples = report["samples"]
    assert [s["creates"] for s in samples] == [*range(2000, 10_001, 1000), 10_000, 10_000]
    assert [s["label"] for s in samples[-2:]] == ["after readdir of all", "after statfs"]
    assert all(s["rss_bytes"] > 1 << 20 for s in samples)
    assert report["growth"] == samples[-1]["rss_bytes"] / samples[0]["rss_bytes"]
    assert report["peak_rss_bytes"] == max(s["rss_bytes"] for s in samples)
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["checkpoint", "creates", "RSS", "MiB", "elapsed", "s"]
    assert len(lines) == 1 + len(samples) + 1
    assert re.fullmatch(r"growth 2,000 creates -> after statfs: \d+\.\d{3}x "
                        r"\([+-]\d+\.\d%; goal <= 1\.10x\); peak \d+\.\d MiB at .+", lines[-1])


def test_time_limit_stops_creating_and_still_reports(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(BENCH), "--first", "500", "--last", "10000000",
                          "--batch", "500", "--time-limit", "0", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["stopped_by_time_limit"]
    assert report["samples"][0]["label"] == "0 creates (time limit)"
    assert "stopped early by --time-limit" in run.stdout


def test_bad_flags_are_one_usage_error():
    run = subprocess.run([sys.executable, str(BENCH), "--first", "10", "--last", "5"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "need 0 < --first <= --last" in run.stderr
    assert "Traceback" not in run.stderr
