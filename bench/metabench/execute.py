"""Run one operation over many items from `inflight` threads, a request (one item, or
a batch of K) at a time, until the items run out or the stonewall deadline passes;
record each request's latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from metabench.targets import Item


@dataclass
class Outcome:
    """What one process did in one phase."""
    items: int = 0                  # items whose operation succeeded
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def execute(target, op: str, indices: Sequence[int], make_item: Callable[[int], Item],
            on_result: Callable[[int, object], None], *, inflight: int, batch: int,
            stonewall: float = 0.0, progress: Callable[[int], None] = lambda n: None
            ) -> Outcome:
    """Do `op` on the items at `indices`. With a stonewall, requests are taken only in
    its first `stonewall` seconds; requests already taken complete. `on_result(index,
    result)` sees every successful result."""
    per_request = max(batch, 1)
    chunks = (indices[i:i + per_request] for i in range(0, len(indices), per_request))
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
                chunk = next(chunks, None)
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
    deadline = start + stonewall if stonewall else None
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
