"""Recovery: after each heal, the seconds until the first ok call (a client's, or a final
observation). A figure per heal (none without faults); invalid only when nothing ever
succeeds after a heal.
"""

from __future__ import annotations

import bisect

from jepsen.checkers.common import anomaly, history, verdict
from jepsen.history import OK


def check(ops) -> dict:
    h = history(ops)
    heals = [op for op in h.nemesis if op.value.get("phase") == "heal"]
    oks = sorted([c.end for c in h.calls if c.type == OK] + [op.time for op in h.finals])
    anomalies, per_heal = [], []
    for heal in heals:
        i = bisect.bisect_right(oks, heal.time)
        if i == len(oks):
            anomalies.append(anomaly("no-recovery", [heal],
                                     f"no call succeeded after the heal of {heal.f}"))
        per_heal.append([heal.f, heal.time, round(oks[i] - heal.time, 3) if i < len(oks) else None])
    seconds = [s for _, _, s in per_heal if s is not None]
    return verdict(anomalies, heals=per_heal, max_seconds=max(seconds, default=None),
                   mean_seconds=round(sum(seconds) / len(seconds), 3) if seconds else None)
