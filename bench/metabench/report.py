"""Report a run: the mdtest-style summary table (with latency percentiles and the ratio
of each phase to each baseline), and the JSON document holding every figure, the
configuration and the machine facts."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from metabench.config import Config
from metabench.phases import title
from metabench.stats import PERCENTILES, PhaseStats, ratios
from metabench.tree import from_config

SCHEMA_VERSION = 1


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


def table(c: Config, target: dict[str, PhaseStats],
          baselines: dict[str, dict[str, PhaseStats]]) -> Table:
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
    per_baseline = {label: ratios(target, stats) for label, stats in baselines.items()}
    for key, s in target.items():
        row = [title(key), *(f"{v:,.1f}" for v in (s.max, s.min, s.mean, s.stddev)),
               *(f"{v:.3f}" for v in s.latency_ms().values())]
        for label, stats in baselines.items():
            base = stats.get(key)
            row += [f"{base.mean:,.1f}" if base else "-",
                    f"{per_baseline[label][key]:.3f}" if key in per_baseline[label] else "-"]
        t.add_row(*row)
    return t


def print_summary(c: Config, target: dict[str, PhaseStats],
                  baselines: dict[str, dict[str, PhaseStats]]) -> None:
    console = Console(width=110 + 24 * len(baselines))
    console.print(f"metabench: {describe(c)}", highlight=False)
    if baselines:
        console.print(f"baselines: {', '.join(baselines)}; x = metaserver rate / baseline rate",
                      highlight=False)
    console.print(table(c, target, baselines))
    for key, s in target.items():
        if s.errors:
            console.print(f"warning: {title(key)}: {s.errors} failed operations, "
                          f"first: {s.first_error}", highlight=False)


def document(c: Config, argv: list[str], machine: dict, target: dict[str, PhaseStats],
             baselines: dict[str, dict[str, PhaseStats]]) -> dict:
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
        "ratios": {label: ratios(target, stats) for label, stats in baselines.items()},
    }


def write_json(path: str, doc: dict) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
