"""What every checker needs from a history, indexed once: the completed client calls,
the forks a failover made, the failover-adjusted commit order, and each read's window of
commit positions.

Commit order: ok mutations (and info ones that carry a seq: they happened) sorted by
(epoch, seq), without the commits a promotion lost (OLD_EPOCH with seq > FORK_SEQ).
A *position* p is the state after the first p commits of that order (0: before any).
Commits sharing one seq are "floating": the seq is an upper bound of each one's.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jepsen.client import READS
from jepsen.history import FINAL, INFO, NEMESIS, OK, Op, pairs

Key = tuple[int, int]


@dataclass(eq=False)
class Call:
    """One client call: its invocation and completion (None: the run ended first)."""
    id: int                     # position in History.calls
    invoke: Op
    done: Op | None

    @property
    def type(self) -> str:
        return self.done.type if self.done is not None else INFO

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def process(self) -> int | str:
        return self.invoke.process

    @property
    def args(self) -> dict[str, Any]:
        return self.invoke.args

    @property
    def result(self) -> Any:
        return self.done.result if self.done is not None else None

    @property
    def seq(self) -> Key | None:
        return self.done.seq if self.done is not None else None

    @property
    def start(self) -> float:
        return self.invoke.time

    @property
    def end(self) -> float:
        return self.done.time if self.done is not None else math.inf

    @property
    def index(self) -> int:
        """The op index to report: the completion, which holds args and result."""
        return (self.done or self.invoke).index

    @property
    def is_read(self) -> bool:
        return self.f in READS

    @property
    def follower_read(self) -> bool:
        return self.is_read and self.seq is not None

    @property
    def inos(self) -> set[int]:
        """The real inodes the call names."""
        return {self.args[k] for k in ("ino", "parent", "new_parent") if k in self.args}

    def __repr__(self) -> str:
        return f"{self.f}#{self.index}(p{self.process} {self.type})"


@dataclass
class Fork:
    """A promotion: epoch `new_epoch` continues `old_epoch`'s log from `fork_seq`."""
    old_epoch: int
    fork_seq: int
    new_epoch: int
    start: float
    end: float                          # its heal, or the end of the history
    old_primary: str | None
    start_index: int
    lost: list[Key] | None = None       # the documented lost commits, once recorded
    lost_index: int | None = None

    def beyond(self, key: Key) -> bool:
        return key[0] == self.old_epoch and key[1] > self.fork_seq


@dataclass
class History:
    ops: list[Op]
    calls: list[Call] = field(init=False)
    finals: list[Op] = field(init=False)
    nemesis: list[Op] = field(init=False)
    forks: list[Fork] = field(init=False)
    commits: list[Call] = field(init=False)
    cache: dict[str, Any] = field(init=False, default_factory=dict)   # shared analyses

    def __post_init__(self) -> None:
        self.calls = [Call(i, invoke, done) for i, (invoke, done) in enumerate(pairs(self.ops))]
        self.finals = [op for op in self.ops if op.process == FINAL]
        self.nemesis = [op for op in self.ops if op.process == NEMESIS]
        self.forks = _forks(self.nemesis, self.ops[-1].time if self.ops else 0.0)
        self.commits = sorted((c for c in self.calls if self.positioned(c)),
                              key=lambda c: (c.seq, c.start))
        self._keys = [c.seq for c in self.commits]
        # A retried request is answered with the newest sequence, not its own: a seq that
        # several commits report only bounds each from above.
        shared = Counter(self._keys)
        self.floating = {c.id for c in self.commits if shared[c.seq] > 1}
        self._by_end = sorted((c for c in self.commits if c.type == OK), key=lambda c: c.end)
        self._ends = [c.end for c in self._by_end]
        self._acked = _running_max(self._positions(self._by_end))
        by_start = sorted(self.commits, key=lambda c: c.start)
        self._starts = [c.start for c in by_start]
        self._invoked = _running_max(self._positions(by_start))

    # --- commit order -------------------------------------------------------------------
    def lost_by_fork(self, key: Key) -> Fork | None:
        return next((f for f in self.forks if f.beyond(key)), None)

    def positioned(self, call: Call) -> bool:
        """A mutation with a place in the commit order."""
        return (not call.is_read and call.type in (OK, INFO) and call.seq is not None
                and self.lost_by_fork(call.seq) is None)

    def position(self, key: Key) -> int:
        """The position after every commit at or before `key`."""
        return bisect.bisect_right(self._keys, tuple(key))

    def _positions(self, calls: list[Call]) -> list[int]:
        return [self.position(c.seq) for c in calls]

    def window(self, call: Call) -> tuple[int, int] | None:
        """The positions whose state a read may have seen: a follower read's applied range;
        otherwise from the newest commit acknowledged before it was invoked to the newest
        one invoked before it completed. None: a read on a deposed primary (unchecked)."""
        if call.seq is not None:
            end = call.done.value.get("seq_end", call.seq[1])
            return self.position(call.seq), self.position((call.seq[0], end))
        if self.deposed(call):
            return None
        lo = bisect.bisect_left(self._ends, call.start)
        hi = bisect.bisect_left(self._starts, call.end)
        return (self._acked[lo - 1] if lo else 0), (self._invoked[hi - 1] if hi else 0)

    def deposed(self, call: Call) -> bool:
        """A call answered by an old primary while a promotion was under way: it may see
        commits the promotion loses, so it proves nothing either way."""
        node = call.done.node if call.done is not None else call.invoke.node
        return any(f.old_primary is not None and node == f.old_primary
                   and call.end > f.start and call.start < f.end for f in self.forks)


def _running_max(values: list[int]) -> list[int]:
    out, best = [], 0
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def _forks(nemesis: list[Op], history_end: float) -> list[Fork]:
    """Forks from promotions (a nemesis value with "at" and "epoch"); a "lost" list belongs
    to the newest fork recorded at or before it (a failover's comes with its heal)."""
    forks: list[Fork] = []
    open_by_name: dict[str, Fork] = {}
    for op in nemesis:
        value = op.value
        if value.get("phase") == "start" and "at" in value and "epoch" in value:
            at = value["at"]
            fork = Fork(at[0], at[1], value["epoch"], op.time, history_end,
                        value.get("old_primary"), op.index)
            forks.append(fork)
            open_by_name[op.f] = fork
        elif value.get("phase") == "heal" and op.f in open_by_name:
            open_by_name.pop(op.f).end = op.time
        if "lost" in value and forks:
            forks[-1].lost = [tuple(k) for k in value["lost"]]
            forks[-1].lost_index = op.index
    return forks


def history(ops: list[Op] | History) -> History:
    return ops if isinstance(ops, History) else History(list(ops))


def anomaly(kind: str, calls: list[Call | Op], explanation: str, **extra: Any) -> dict:
    return {"kind": kind, "ops": [c.index for c in calls], "explanation": explanation, **extra}


def verdict(anomalies: list[dict], **figures: Any) -> dict:
    return {"valid": not anomalies, "anomalies": anomalies, **figures}


def unknown(why: str, **figures: Any) -> dict:
    return {"valid": "unknown", "anomalies": [], "why": why, **figures}
