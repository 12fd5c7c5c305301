"""Figures from outcomes: mdtest's rate per phase (items of all processes / the slowest
process's time), its max/min/mean/stddev across iterations, and request latency
percentiles; for interleaved baselines, the rates of paired windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metabench.driver import RunResult
from metabench.execute import Outcome
from metabench.interleave import Paired, paired

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}


@dataclass
class PhaseStats:
    key: str
    rates: list[float]            # per iteration, items/s
    items: int                    # over all iterations and processes
    errors: int
    first_error: str
    latencies: np.ndarray         # seconds per request, all iterations and processes

    @property
    def max(self) -> float:
        return float(np.max(self.rates))

    @property
    def min(self) -> float:
        return float(np.min(self.rates))

    @property
    def mean(self) -> float:
        return float(np.mean(self.rates))

    @property
    def stddev(self) -> float:
        return float(np.std(self.rates))     # population, as mdtest prints it

    def latency_ms(self) -> dict[str, float]:
        if not self.latencies.size:
            return {name: 0.0 for name in PERCENTILES}
        values = np.percentile(self.latencies, list(PERCENTILES.values())) * 1e3
        return dict(zip(PERCENTILES, (float(v) for v in values)))

    def to_json(self) -> dict:
        return {"rate": self.mean, "max": self.max, "min": self.min, "mean": self.mean,
                "stddev": self.stddev, "rates": self.rates, "items": self.items,
                "errors": self.errors, "first_error": self.first_error,
                "requests": int(self.latencies.size),
                "latency_ms": {**self.latency_ms(),
                               "mean": float(self.latencies.mean() * 1e3) if self.latencies.size else 0.0}}


def phase_rate(outcomes: list[Outcome]) -> float:
    slowest = max(o.seconds for o in outcomes)
    return sum(o.items for o in outcomes) / slowest if slowest > 0 else 0.0


def summarize(result: RunResult, baseline: str = "") -> dict[str, PhaseStats]:
    """Per phase key ("file_create", ...) in plan order: the target's figures, or with
    `baseline` those of that interleaved baseline (in the phases it ran in)."""
    out: dict[str, PhaseStats] = {}
    for phase, outcomes in zip(result.phases, result.outcomes):
        if baseline:
            if not all(baseline in o.baselines for o in outcomes):
                continue
            outcomes = [o.baselines[baseline] for o in outcomes]
        stats = out.setdefault(phase.key, PhaseStats(phase.key, [], 0, 0, "",
                                                     np.zeros(0, np.float32)))
        stats.rates.append(phase_rate(outcomes))
        stats.items += sum(o.items for o in outcomes)
        stats.errors += sum(o.errors for o in outcomes)
        stats.first_error = stats.first_error or next(
            (o.first_error for o in outcomes if o.first_error), "")
        stats.latencies = np.concatenate([stats.latencies] + [o.latencies for o in outcomes])
    return out


def paired_by_phase(result: RunResult, baseline: str) -> dict[str, Paired]:
    """Per phase key the target and `baseline` rates of each round, over all iterations."""
    by_key: dict[str, list[list[Outcome]]] = {}
    for phase, outcomes in zip(result.phases, result.outcomes):
        if all(baseline in o.baselines for o in outcomes):
            by_key.setdefault(phase.key, []).append(outcomes)
    return {key: paired(runs, baseline) for key, runs in by_key.items()}


def ratios(target: dict[str, PhaseStats], baseline: dict[str, PhaseStats]) -> dict[str, float]:
    """Each phase's mean rate over the baseline's mean rate for the same phase."""
    return {key: stats.mean / baseline[key].mean
            for key, stats in target.items() if key in baseline and baseline[key].mean > 0}
