"""The history of a run: every operation's invocation and completion, one JSON object per
line (history.jsonl), as the runner records it and every checker reads it.

An operation is one call of the metaserver API (its name in `f`: mkdir, create, rename,
unlink, link, setattr, getattr, lookup, readdir, ...) made by one client `process`, or a
fault applied by the nemesis (`process` "nemesis"), or a final observation made after
the heal (`process` "final": tree, fsck, rollback). Each client operation appears twice:
its `invoke`, then exactly one completion with the same `process` and `f`:

  ok    it happened; `value["result"]` holds what it returned
  fail  it certainly did not happen (the server answered with an error); `error` names
        the errno ("ENOENT", ...)
  info  unknown: it may or may not have happened (timeout, lost connection, server
        gone); `error` says what was seen. A checker must allow both outcomes.

`value["args"]` holds the call's arguments exactly as sent: inode numbers as the server
knows them, names as str. `seq` is a position (epoch, sequence) in the primary's change
log: for an ok mutation, the commit that applied it (its `metaserver-commit-seq`
trailer); for an ok read answered by a follower, the position the follower had applied
(`metaserver-applied-seq`) when the read began; applying goes on meanwhile, so the
state it read is the one after some sequence from `seq` to `value["seq_end"]` (the
position when it ended, `metaserver-applied-seq-end`); otherwise None.
`node` names the server the call went to, `time` is seconds since the run began.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"
NEMESIS, FINAL = "nemesis", "final"


@dataclass
class Op:
    index: int
    time: float
    process: int | str
    type: str
    f: str
    value: dict[str, Any] = field(default_factory=dict)
    node: str | None = None
    seq: tuple[int, int] | None = None
    error: str | None = None

    @property
    def args(self) -> dict[str, Any]:
        return self.value.get("args", {})

    @property
    def result(self) -> Any:
        return self.value.get("result")

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(record, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Op:
        record = json.loads(line)
        seq = record.pop("seq", None)
        return cls(**record, seq=tuple(seq) if seq is not None else None)


class Recorder:
    """Appends operations to history.jsonl as they happen (thread-safe, flushed per
    line, so a run that dies keeps everything recorded until then)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._next = 0
        self.counts: Counter[str] = Counter()     # completions of client calls by type

    def now(self) -> float:
        return time.monotonic() - self._start

    def record(self, process: int | str, type: str, f: str, value: dict | None = None, *,
               node: str | None = None, seq: tuple[int, int] | None = None,
               error: str | None = None) -> Op:
        with self._lock:
            op = Op(self._next, round(self.now(), 6), process, type, f, value or {}, node,
                    seq, error)
            self._next += 1
            if type != INVOKE and process not in (NEMESIS, FINAL):
                self.counts[type] += 1
            self._file.write(op.to_json() + "\n")
            self._file.flush()
        return op

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read(path: Path) -> list[Op]:
    with open(path, encoding="utf-8") as f:
        return [Op.from_json(line) for line in f if line.strip()]


def write(path: Path, ops: Iterable[Op]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for op in ops:
            f.write(op.to_json() + "\n")


def pairs(ops: Iterable[Op]) -> Iterator[tuple[Op, Op | None]]:
    """(invocation, completion) for every client operation, in invocation order; the
    completion is None when the run ended before one was recorded (treat as info)."""
    pending: dict[int | str, Op] = {}
    order: list[Op] = []
    done: dict[int, Op] = {}
    for op in ops:
        if op.process in (NEMESIS, FINAL):
            continue
        if op.type == INVOKE:
            pending[op.process] = op
            order.append(op)
        elif op.process in pending:
            done[pending.pop(op.process).index] = op
    for invoke in order:
        yield invoke, done.get(invoke.index)
