"""Interleaved baselines: one timed phase alternates short windows of the target with
windows of each baseline (echo, raw) at the same concurrency, round after round, until
the target's items run out; the figures of each round are paired.

A baseline measured minutes apart from the target sees another box (the load of two
shared cores moves by 2x within a run); alternating 1-second windows puts both under the
same load. Windows follow a schedule on the monotonic clock that every process starts at
the phase's barrier, so all processes switch together and do not drift apart: window k
of a round is meant to run over [t0 + (round * n + k) * W, ... + W). A baseline window
lasts no longer than the target's window of its round did (the last round is short).

Baselines get their own items: echo ignores them; the raw engine gets names of its own
(creates take new ones, other operations cycle over the names created so far).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from metabench.execute import Outcome, Requests, Window, execute
from metabench.targets import Item

TARGET_LABEL = "metaserver"
UNBOUNDED = range(10 ** 12)           # baseline items: as many as a window takes


@dataclass
class Baseline:
    """A baseline target a worker process holds open for interleaved windows."""
    label: str
    target: object
    created: int = 0                   # raw names created so far by this process

    def item_source(self, op: str, rank: int) -> tuple[Callable[[int], Item], range]:
        """(make_item, indices) for `op`: new names for creates, else those made."""
        root = self.target.root
        if op in ("create", "mkdir"):
            first = self.created
            return (lambda i: Item(root, f"b{rank}.{first + i}")), UNBOUNDED
        made = max(self.created, 1)
        return (lambda i: Item(root, f"b{rank}.{i % made}", f"b{rank}.{i % made}.moved",
                               i % made)), UNBOUNDED


def run_phase(run_target: Callable[[Requests, float], Outcome], requests: Requests,
              baselines: list[Baseline], op: str, rank: int, window: float, *,
              inflight: int, batch: int, stop: float | None = None) -> Outcome:
    """Alternate the target (`run_target(requests, until)`) with each baseline until the
    requests run out (or, with a stonewall, `stop` passes); returns the target's Outcome holding every window and what each
    baseline did."""
    total = Outcome()
    per_baseline = {b.label: Outcome() for b in baselines}
    slots = 1 + len(baselines)
    t0 = time.perf_counter()
    for round_ in itertools.count():
        if requests.exhausted or (stop is not None and time.perf_counter() >= stop):
            break
        start = time.time()
        got = run_target(requests, _until(t0 + (round_ * slots + 1) * window, window))
        total.add(got)
        total.windows.append(Window(TARGET_LABEL, round_, start, time.time(), got.items,
                                    got.seconds))
        for k, b in enumerate(baselines, start=1):
            # never longer than the target's window of this round: the last one is short
            until = min(_until(t0 + (round_ * slots + k + 1) * window, window),
                        time.perf_counter() + got.seconds)
            made, indices = b.item_source(op, rank)
            start = time.time()
            mine = execute(b.target, op, Requests(indices, batch), made, lambda i, r: None,
                           inflight=inflight, batch=batch, until=until)
            if op in ("create", "mkdir"):
                b.created += mine.items
            per_baseline[b.label].add(mine)
            total.windows.append(Window(b.label, round_, start, time.time(), mine.items,
                                        mine.seconds))
    total.baselines = per_baseline
    return total


def _until(slot_end: float, window: float) -> float:
    """A window ends with its slot; one that starts late (the one before ran over)
    still gets half a window, so it measures something."""
    return max(slot_end, time.perf_counter() + window / 2)


@dataclass
class Paired:
    """One phase against one baseline, over the rounds of every iteration."""
    target: list[float]                # items/s per round, all processes
    baseline: list[float]
    ratio: list[float]                 # target / baseline, round by round

    def to_json(self) -> dict:
        return {"windows": len(self.ratio), "target": spread(self.target),
                "baseline": spread(self.baseline), "ratio": spread(self.ratio)}


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def paired(per_iteration: list[list[Outcome]], label: str) -> Paired:
    """Rates per round (items of all processes in that round's windows / the longest of
    them), paired target with baseline; rounds where either did nothing are left out."""
    out = Paired([], [], [])
    for outcomes in per_iteration:
        rounds: dict[tuple[int, str], list[Window]] = {}
        for o in outcomes:
            for w in o.windows:
                rounds.setdefault((w.round, w.label), []).append(w)
        for (round_, who), windows in sorted(rounds.items()):
            if who != TARGET_LABEL or (round_, label) not in rounds:
                continue
            mine, theirs = _rate(windows), _rate(rounds[(round_, label)])
            if mine > 0 and theirs > 0:
                out.target.append(mine)
                out.baseline.append(theirs)
                out.ratio.append(mine / theirs)
    return out


def _rate(windows: list[Window]) -> float:
    slowest = max(w.seconds for w in windows)
    return sum(w.items for w in windows) / slowest if slowest > 0 else 0.0
