"""Run one operation over many items from `inflight` threads, a request (one item, or
a batch of K) at a time, until the items run out or a deadline (the stonewall, or the
end of an interleaving window) passes; record each request's latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from metabench.targets import Item


@dataclass
class Window:
    """One stretch of an interleaved phase in one process: the target or one baseline."""
    label: str                      # "metaserver" or the baseline's label
    round: int                      # windows of one round are paired
    start: float                    # time.time() at its first request
    end: float                      # time.time() when its last request completed
    items: int
    seconds: float


@dataclass
class Outcome:
    """What one process did in one phase. In an interleaved phase, `seconds` counts the
    target's windows only, `baselines` holds what each baseline did in its windows."""
    items: int = 0                  # items whose operation succeeded
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    windows: list[Window] = field(default_factory=list)
    baselines: dict[str, "Outcome"] = field(default_factory=dict)

    def add(self, more: "Outcome") -> None:
        self.items += more.items
        self.errors += more.errors
        self.first_error = self.first_error or more.first_error
        self.seconds += more.seconds
        self.latencies = np.concatenate([self.latencies, more.latencies])


class Requests:
    """Items cut into requests (one item, or a batch of them), taken in order by any
    thread; what one window of a phase leaves is there for the next."""

    def __init__(self, indices: Sequence[int], batch: int) -> None:
        per_request = max(batch, 1)
        self._chunks = (indices[i:i + per_request] for i in range(0, len(indices), per_request))
        self._next = next(self._chunks, None)

    @property
    def exhausted(self) -> bool:
        return self._next is None

    def take(self) -> Sequence[int] | None:
        chunk, self._next = self._next, next(self._chunks, None) if self._next else None
        return chunk


def execute(target, op: str, indices: Sequence[int] | Requests, make_item: Callable[[int], Item],
            on_result: Callable[[int, object], None], *, inflight: int, batch: int,
            stonewall: float = 0.0, until: float | None = None,
            progress: Callable[[int], None] = lambda n: None) -> Outcome:
    """Do `op` on the items at `indices` (or the requests left in a Requests). With a
    stonewall, requests are taken only in its first `stonewall` seconds, with `until`
    (a time.perf_counter() value) only before it; requests already taken complete.
    `on_result(index, result)` sees every successful result."""
    requests = indices if isinstance(indices, Requests) else Requests(indices, batch)
    lock = threading.Lock()
    outcome = Outcome()
    latencies: list[float] = []
    crashed: list[BaseException] = []

    def work() -> None:
        try:
            loop()
        except BaseException as exc:   # re-raised in the calling thread below
            crashed.append(exc)

    def loop() -> None:
        while True:
            with lock:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                chunk = requests.take()
            if chunk is None:
                return
            start = time.perf_counter()
            results = target.run(op, [make_item(i) for i in chunk], batch > 0)
            elapsed = time.perf_counter() - start
            ok = 0
            for index, result in zip(chunk, results):
                if isinstance(result, Exception):
                    with lock:
                        outcome.errors += 1
                        outcome.first_error = outcome.first_error or f"{op}: {result}"
                else:
                    on_result(index, result)
                    ok += 1
            with lock:
                outcome.items += ok
                latencies.append(elapsed)
                progress(ok)

    start = time.perf_counter()
    deadline = start + stonewall if stonewall else until
    threads = [threading.Thread(target=work, daemon=True) for _ in range(inflight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if crashed:
        raise crashed[0]
    outcome.seconds = time.perf_counter() - start
    outcome.latencies = np.asarray(latencies, np.float32)
    return outcome
