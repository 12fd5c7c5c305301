"""Follower reads: each must show a state the primary's log had after some position of
its applied range (the replay finds those that show none: "non-prefix"); one process's
follower reads never go back in the log ("non-monotonic"), and never miss that
process's own earlier acknowledged write ("read-your-writes").
"""

from __future__ import annotations

from collections import defaultdict

from jepsen.checkers import replay
from jepsen.checkers.common import Call, anomaly, history, verdict
from jepsen.history import OK


def check(ops) -> dict:
    h = history(ops)
    follower_reads = [c for c in h.calls if c.follower_read and c.type == OK]
    anomalies = list(replay.analyse(h).prefix_anomalies)
    by_process: dict[int | str, list[Call]] = defaultdict(list)
    for c in h.calls:
        if c.type == OK and c.seq is not None:
            by_process[c.process].append(c)
    for calls in by_process.values():
        newest_read: Call | None = None
        own_write: Call | None = None       # the newest acknowledged, in commit order
        for c in calls:                     # invocation order: one call at a time
            if not c.is_read:
                if h.lost_by_fork(c.seq) is None and c.id not in h.floating and \
                        (own_write is None or c.seq > own_write.seq):
                    own_write = c
                continue
            if newest_read is not None and c.seq < newest_read.seq:
                anomalies.append(anomaly(
                    "non-monotonic", [newest_read, c],
                    f"process {c.process} read at {list(newest_read.seq)}, then at "
                    f"{list(c.seq)}: back in the log"))
            if own_write is not None and c.seq < own_write.seq:
                anomalies.append(anomaly(
                    "read-your-writes", [own_write, c],
                    f"process {c.process}'s {own_write.f} was acknowledged at "
                    f"{list(own_write.seq)}, its next follower read was at {list(c.seq)}"))
            if newest_read is None or c.seq > newest_read.seq:
                newest_read = c
    return verdict(anomalies, follower_reads=len(follower_reads))
