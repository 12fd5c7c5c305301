"""A run's report: report.md (operations by outcome, what each checker found with the
operations involved, latency percentiles, the faults) and timeline.png (throughput and
latency over time, fault windows shaded)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from jepsen.history import NEMESIS, OK, Op, pairs

_PERCENTILES = (50, 90, 99, 100)


def write(run_dir: Path, ops: list[Op], summary: dict) -> None:
    (run_dir / "report.md").write_text(markdown(ops, summary), encoding="utf-8")
    plot(ops, run_dir / "timeline.png")


def markdown(ops: list[Op], summary: dict) -> str:
    config, results = summary.get("config", {}), summary["checkers"]
    by_index = {op.index: op for op in ops}
    lines = [f"# jepsen run: {'VALID' if summary['valid'] is True else summary['valid']}", ""]
    if config:
        lines += ["| setting | value |", "|---|---|",
                  *(f"| {k} | {v} |" for k, v in config.items()), ""]
    lines += ["## Operations by outcome", "", "| f | ok | fail | info | none |",
              "|---|---|---|---|---|"]
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for invoke, done in pairs(ops):
        outcomes[invoke.f][done.type if done else "none"] += 1
    for f, c in sorted(outcomes.items()):
        lines.append(f"| {f} | {c[OK]} | {c['fail']} | {c['info']} | {c['none']} |")
    lines += ["", "## Checkers", "", "| checker | valid | anomalies |", "|---|---|---|"]
    for name, result in results.items():
        lines.append(f"| {name} | {result.get('valid')} | {len(result.get('anomalies', []))} |")
    for name, result in results.items():
        figures = {k: v for k, v in result.items() if k not in ("valid", "anomalies")}
        if figures:
            lines += ["", f"**{name}**: " + ", ".join(f"{k} = {v}" for k, v in figures.items())]
        for anomaly in result.get("anomalies", [])[:20]:
            lines += ["", f"- **{anomaly.get('kind')}**: {anomaly.get('explanation', '')}"]
            lines += [f"  - `{by_index[i].to_json()}`" for i in anomaly.get("ops", [])[:12]
                      if i in by_index]
    lines += ["", "## Latency of ok operations (ms)", "",
              "| f | count | " + " | ".join(f"p{p}" for p in _PERCENTILES) + " |",
              "|---|---|" + "---|" * len(_PERCENTILES)]
    for f, values in sorted(_latencies(ops).items()):
        values.sort()
        cells = " | ".join(f"{values[min(len(values) - 1, len(values) * p // 100)]:.1f}"
                           for p in _PERCENTILES)
        lines.append(f"| {f} | {len(values)} | {cells} |")
    faults = [op for op in ops if op.process == NEMESIS]
    if faults:
        lines += ["", "## Faults", "", "| time (s) | fault | phase | detail |", "|---|---|---|---|"]
        for op in faults:
            detail = {k: v for k, v in op.value.items() if k != "phase"}
            lines.append(f"| {op.time:.1f} | {op.f} | {op.value.get('phase')} | {detail} |")
    return "\n".join(lines) + "\n"


def _latencies(ops: list[Op]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for invoke, done in pairs(ops):
        if done is not None and done.type == OK:
            out[invoke.f].append((done.time - invoke.time) * 1000)
    return out


def fault_windows(ops: list[Op]) -> list[tuple[float, float, str]]:
    """(start, end, name) of every fault; one never healed lasts to the history's end."""
    windows, open_at = [], {}
    end = ops[-1].time if ops else 0.0
    for op in ops:
        if op.process != NEMESIS:
            continue
        if op.value.get("phase") == "start":
            open_at[op.f] = op.time
        elif op.f in open_at:
            windows.append((open_at.pop(op.f), op.time, op.f))
    windows += [(start, end, name) for name, start in open_at.items()]
    return windows


def plot(ops: list[Op], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(invoke, c) for invoke, c in pairs(ops) if c is not None]
    fig, (rate_ax, lat_ax) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if done:
        span = int(max(c.time for _, c in done)) + 1
        for kind, colour in ((OK, "tab:green"), ("fail", "tab:orange"), ("info", "tab:red")):
            per_second = Counter(int(c.time) for _, c in done if c.type == kind)
            rate_ax.plot(range(span), [per_second[s] for s in range(span)], label=kind,
                         color=colour, linewidth=1)
            points = [(c.time, (c.time - i.time) * 1000) for i, c in done if c.type == kind]
            if points:
                lat_ax.scatter(*zip(*points), s=2, color=colour, label=kind)
    for start, end, name in fault_windows(ops):
        for ax in (rate_ax, lat_ax):
            ax.axvspan(start, end, color="grey", alpha=0.2)
        rate_ax.text(start, rate_ax.get_ylim()[1] * 0.95, name, fontsize=7, va="top")
    rate_ax.set_ylabel("operations/s")
    rate_ax.legend(loc="upper right", fontsize=7)
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.set_yscale("log")
    lat_ax.set_xlabel("seconds since start (faults shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
