"""Report a run: the mdtest-style summary table (with latency percentiles and the ratio
of each phase to each baseline), and the JSON document holding every figure, the
configuration and the machine facts.

The JSON document (schema 2):
  tool, schema, command, config, shape, machine (with load averages at start and end),
  latency_unit;
  phases:    {phase key: figures}, figures = rate (mean of iterations), min, max, mean,
             stddev, rates (per iteration), items, errors, first_error, requests,
             latency_ms {p50, p99, p99.9, mean};
  baselines: {label: {phase key: figures}}; an interleaved baseline (echo, raw unless
             --separate-baselines) has figures for the item phases only, from its
             windows (rate = its items / its windows' time);
  ratios:    {label: {phase key: target / baseline}}: for an interleaved baseline the
             median of the per-round ratios of paired windows, else of the mean rates;
  paired:    {label: {phase key: {windows, target, baseline, ratio}}}, each of target,
             baseline and ratio a {min, median, max} over the rounds (items/s of all
             processes in the round's window / the longest of those windows);
  windows:   {phase key: [[iteration, process, label, round, start, end, items], ...]}:
             every window of every process, start and end in Unix seconds;
  interleaved: {window_s, baselines}.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from metabench.config import Config
from metabench.driver import RunResult
from metabench.interleave import Paired
from metabench.phases import title
from metabench.stats import PERCENTILES, PhaseStats, ratios
from metabench.tree import from_config

SCHEMA_VERSION = 2


def describe(c: Config) -> str:
    s = from_config(c)
    load = f"batch {c.batch}" if c.batch else "unary"
    target = f"server {c.server}" if c.server else f"in process {c.meta_url}"
    kinds = "files" if not c.dirs else "directories" if not c.files else "files+directories"
    return (f"{c.processes} process(es) x {c.inflight} in flight, {load}, {target}; "
            f"{s.items} {kinds} per process, {s.items_per_dir} per directory, "
            f"depth {s.depth}, branch {s.branch}, {s.total_dirs} directories per tree"
            f"{', unique tree per process' if c.unique_dir else ', one shared tree'}"
            f"{', leaves only' if s.leaf_only else ''}"
            f"{f', {c.write_bytes} bytes per file' if c.write_bytes else ''}; "
            f"{c.iterations} iteration(s){f', stonewall {c.stonewall:g} s' if c.stonewall else ''}")


def all_ratios(target: dict[str, PhaseStats], baselines: dict[str, dict[str, PhaseStats]],
               paired: dict[str, dict[str, Paired]]) -> dict[str, dict[str, float]]:
    """Per baseline and phase: the median paired ratio if interleaved, else of the means."""
    return {label: ({key: p.to_json()["ratio"]["median"] for key, p in paired[label].items()
                     if p.ratio} if label in paired else ratios(target, stats))
            for label, stats in baselines.items()}


def table(c: Config, target: dict[str, PhaseStats],
          baselines: dict[str, dict[str, PhaseStats]],
          paired: dict[str, dict[str, Paired]]) -> Table:
    t = Table(title=f"SUMMARY rate (items/s), {c.iterations} iteration(s); latency per request (ms)",
              title_justify="left", box=None, pad_edge=False)
    t.add_column("Operation", justify="left")
    for name in ("Max", "Min", "Mean", "Std Dev"):
        t.add_column(name, justify="right")
    for name in PERCENTILES:
        t.add_column(f"{name} ms", justify="right")
    for label in baselines:
        short = label.split(":")[0]     # localfs:PATH -> localfs; the path is in the heading
        t.add_column(f"{short} /s", justify="right")
        t.add_column(f"x {short}", justify="right")
    per_baseline = all_ratios(target, baselines, paired)
    for key, s in target.items():
        row = [title(key), *(f"{v:,.1f}" for v in (s.max, s.min, s.mean, s.stddev)),
               *(f"{v:.3f}" for v in s.latency_ms().values())]
        for label, stats in baselines.items():
            base = stats.get(key)
            row += [f"{base.mean:,.1f}" if base else "-",
                    f"{per_baseline[label][key]:.3f}" if key in per_baseline[label] else "-"]
        t.add_row(*row)
    return t


def paired_table(paired: dict[str, dict[str, Paired]]) -> Table:
    t = Table(title="PAIRED WINDOWS (items/s per round: min / median / max)",
              title_justify="left", box=None, pad_edge=False)
    for name in ("Operation", "baseline", "rounds", "metaserver", "baseline /s", "ratio"):
        t.add_column(name, justify="left" if name in ("Operation", "baseline") else "right")
    for label, phases in paired.items():
        for key, p in phases.items():
            j = p.to_json()
            rates = [" / ".join(f"{j[k][m]:,.0f}" for m in ("min", "median", "max"))
                     for k in ("target", "baseline")]
            ratio = " / ".join(f"{j['ratio'][m]:.2f}" for m in ("min", "median", "max"))
            t.add_row(title(key), label, str(j["windows"]), *rates, ratio)
    return t


def print_summary(c: Config, target: dict[str, PhaseStats],
                  baselines: dict[str, dict[str, PhaseStats]],
                  paired: dict[str, dict[str, Paired]]) -> None:
    console = Console(width=110 + 24 * len(baselines))
    console.print(f"metabench: {describe(c)}", highlight=False)
    if baselines:
        console.print(f"baselines: {', '.join(baselines)}; x = metaserver rate / baseline rate"
                      + (f" ({', '.join(paired)}: interleaved in {c.window:g} s windows, "
                         "x = median of the paired windows' ratios)" if paired else ""),
                      highlight=False)
    console.print(table(c, target, baselines, paired))
    if paired:
        console.print(paired_table(paired))
    for key, s in target.items():
        if s.errors:
            console.print(f"warning: {title(key)}: {s.errors} failed operations, "
                          f"first: {s.first_error}", highlight=False)


def document(c: Config, argv: list[str], machine: dict, target: dict[str, PhaseStats],
             baselines: dict[str, dict[str, PhaseStats]], paired: dict[str, dict[str, Paired]],
             result: RunResult) -> dict:
    shape = from_config(c)
    return {
        "tool": "metabench", "schema": SCHEMA_VERSION, "command": ["metabench", *argv],
        "config": c.to_json(),
        "shape": {"items_per_process": shape.items, "items_per_dir": shape.items_per_dir,
                  "dirs_per_tree": shape.dirs, "tree_copies": shape.loops,
                  "item_dirs_per_tree": shape.item_dirs},
        "machine": machine,
        "latency_unit": "one request: one item (unary) or one Batch of --batch items",
        "phases": {key: s.to_json() for key, s in target.items()},
        "baselines": {label: {key: s.to_json() for key, s in stats.items()}
                      for label, stats in baselines.items()},
        "ratios": all_ratios(target, baselines, paired),
        "paired": {label: {key: p.to_json() for key, p in phases.items()}
                   for label, phases in paired.items()},
        "windows": windows(result),
        "interleaved": {"window_s": c.window, "baselines": list(paired)},
    }


def windows(result: RunResult) -> dict[str, list[list]]:
    out: dict[str, list[list]] = {}
    for phase, outcomes in zip(result.phases, result.outcomes):
        for rank, o in enumerate(outcomes):
            out.setdefault(phase.key, []).extend(
                [phase.iteration, rank, w.label, w.round, w.start, w.end, w.items]
                for w in o.windows)
    return {key: rows for key, rows in out.items() if rows}


def write_json(path: str, doc: dict) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
