"""One client process: open its target, then for every phase of the plan wait at the
barrier with the other processes, do its share of the phase, and report what it did.

With interleaved baselines (echo, raw) the process holds them open too, and each
timed item phase alternates windows of the target and of each baseline
(metabench.interleave).

Work a run needs but does not time (creating items for a stat-only run, removing what
a stonewall left behind, finding a shared tree made by process 0) is done between the
timed phases.
"""

from __future__ import annotations

import time
from threading import BrokenBarrierError

from metabench import interleave, tree
from metabench.config import Config
from metabench.execute import Outcome, Requests, execute
from metabench.phases import TARGET_OP, Phase, item_kinds, item_phases, plan
from metabench.targets import Item, TargetSpec, open_target


class Worker:
    def __init__(self, rank: int, config: Config, spec: TargetSpec, barrier, results,
                 progress, run_name: str, interleaved: list[tuple[str, TargetSpec]]) -> None:
        self.rank, self.config, self.spec = rank, config, spec
        self.interleaved_specs = interleaved
        self.baselines: list[interleave.Baseline] = []
        self.barrier, self.results, self.progress = barrier, results, progress
        self.run_name = run_name
        self.shape = tree.from_config(config)
        self.creates_tree = config.unique_dir or rank == 0
        self.target = None
        self.run_dir = None
        self.nodes: dict[int, object] = {}      # tree node -> the target's handle
        self.handles: dict[str, list] = {}      # kind -> per item: handle, None if absent
        self.moved: dict[str, bytearray] = {}   # kind -> per item: renamed?

    # --- the process ----------------------------------------------------------------------
    def main(self) -> None:
        self.target = open_target(self.spec)
        try:
            for label, spec in self.interleaved_specs:
                self.baselines.append(interleave.Baseline(label, open_target(spec)))
            self._open_run_dir()
            for index, phase in enumerate(plan(self.config)):
                self._phase(index, phase)
            self.barrier.wait()
            if self.rank == 0:
                self.target.run("rmdir", [Item(self.target.root, self.run_name)], False)
        finally:
            for b in self.baselines:
                b.target.close()
            self.target.close()

    def _open_run_dir(self) -> None:
        if self.rank == 0:
            [self.run_dir] = self._must("mkdir", [Item(self.target.root, self.run_name)])
        self.barrier.wait()
        if self.rank != 0:
            self.run_dir = self.target.resolve(self.target.root, self.run_name)

    def _must(self, op: str, items: list[Item]) -> list:
        results = self.target.run(op, items, False)
        for result in results:
            if isinstance(result, Exception):
                raise RuntimeError(f"{op} {items[0].name}: {result}")
        return results

    # --- phases ---------------------------------------------------------------------------
    def _phase(self, index: int, phase: Phase) -> None:
        if phase.kind == "tree":
            if phase.op == "create":
                self._reset_items()
        elif phase.op != "create" and phase.op == item_phases(self.config, phase.kind)[0]:
            self._untimed(phase.kind, "create")     # the items must exist to be measured
        self.barrier.wait()
        self.progress[2 * self.rank] = index
        self.progress[2 * self.rank + 1] = 0
        outcome = self._tree(phase.op) if phase.kind == "tree" else self._items(phase)
        self.results.put(("phase", self.rank, index, outcome))
        if phase.kind == "tree" and phase.op == "create":
            self.barrier.wait()      # the shared tree exists: the others find it, untimed
            if not self.creates_tree:
                self._resolve_tree()
        elif phase.kind != "tree" and phase.op == item_phases(self.config, phase.kind)[-1]:
            self._untimed(phase.kind, "remove")     # whatever is left, before the tree goes

    def _count(self, n: int) -> None:
        self.progress[2 * self.rank + 1] += n

    def _tree(self, op: str) -> Outcome:
        if not self.creates_tree:
            return Outcome()
        levels = self._levels()
        if op == "remove":
            levels = levels[::-1]
        total = Outcome()
        start = time.perf_counter()
        for level in levels:
            got = execute(self.target, TARGET_OP[("tree", op)], level, self._node_item,
                          self._node_result(op), inflight=self.config.inflight,
                          batch=self.config.batch, progress=self._count)
            total.add(got)
        total.seconds = time.perf_counter() - start
        return total

    def _levels(self) -> list[list[int]]:
        levels: list[list[int]] = [[] for _ in range(self.shape.depth + 1)]
        for node in range(self.shape.total_dirs):
            levels[self.shape.depth_of(node)].append(node)
        return levels

    def _node_item(self, node: int) -> Item:
        parent = self.shape.parent(node)
        return Item(self.run_dir if parent is None else self.nodes[parent],
                    tree.node_name(self.shape, node, self.config.unique_dir, self.rank))

    def _node_result(self, op: str):
        def record(node: int, handle) -> None:
            if op == "create":
                self.nodes[node] = handle
            else:
                self.nodes.pop(node, None)
        return record

    def _resolve_tree(self) -> None:
        for level in self._levels():
            for node in level:
                item = self._node_item(node)
                self.nodes[node] = self.target.resolve(item.parent, item.name)

    def _reset_items(self) -> None:
        for kind in item_kinds(self.config):
            self.handles[kind] = [None] * self.shape.items
            self.moved[kind] = bytearray(self.shape.items)

    def _eligible(self, kind: str, op: str) -> list[int]:
        handles, moved = self.handles[kind], self.moved[kind]
        if op == "create":
            return [i for i, h in enumerate(handles) if h is None]
        if op == "rename":
            return [i for i, h in enumerate(handles) if h is not None and not moved[i]]
        return [i for i, h in enumerate(handles) if h is not None]

    def _item(self, kind: str):
        handles, moved = self.handles[kind], self.moved[kind]
        nodes, shape, rank = self.nodes, self.shape, self.rank

        def make(i: int) -> Item:
            name = tree.item_name(kind, rank, i)
            if moved[i]:
                name = tree.renamed(name)
            return Item(nodes[shape.item_dir(i)], name, tree.renamed(name), handles[i])
        return make

    def _on_result(self, kind: str, op: str):
        handles, moved = self.handles[kind], self.moved[kind]

        def record(i: int, result) -> None:
            if op == "create":
                handles[i] = result
            elif op == "remove":
                handles[i] = None
            elif op == "rename":
                moved[i] = 1
        return record

    def _items(self, phase: Phase, timed: bool = True) -> Outcome:
        c = self.config
        requests = Requests(self._eligible(phase.kind, phase.op), c.batch)

        def run(requests: Requests, until: float | None, stonewall: float = 0.0) -> Outcome:
            return execute(self.target, phase.target_op, requests, self._item(phase.kind),
                           self._on_result(phase.kind, phase.op), inflight=c.inflight,
                           batch=c.batch, stonewall=stonewall, until=until,
                           progress=self._count if timed else (lambda n: None))

        if not timed:
            return run(requests, None)
        if not self.baselines:
            return run(requests, None, c.stonewall)
        if c.stonewall:     # the stonewall bounds the target's windows, not the baselines'
            stop = time.perf_counter() + c.stonewall
            return interleave.run_phase(lambda r, until: run(r, min(until, stop)), requests,
                                        self.baselines, phase.target_op, self.rank, c.window,
                                        inflight=c.inflight, batch=c.batch, stop=stop)
        return interleave.run_phase(run, requests, self.baselines, phase.target_op,
                                    self.rank, c.window, inflight=c.inflight, batch=c.batch)

    def _untimed(self, kind: str, op: str) -> None:
        if self._eligible(kind, op):
            self._items(Phase(-1, kind, op), timed=False)


def main(rank: int, config: Config, spec: TargetSpec, barrier, results, progress,
         run_name: str, interleaved: list[tuple[str, TargetSpec]]) -> None:
    """Process entry point: failures travel to the parent as one line."""
    try:
        Worker(rank, config, spec, barrier, results, progress, run_name, interleaved).main()
    except BrokenBarrierError:
        pass                 # the parent gave up on the run; it says why
    except Exception as exc:
        results.put(("fatal", rank, _one_line(exc)))


def _one_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
