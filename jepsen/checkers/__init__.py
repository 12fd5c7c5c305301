"""The history checkers: pure functions over a list of Op (history.jsonl), re-runnable
offline. Each returns {"valid": True | False | "unknown", "anomalies": [{"kind", "ops"
(op indexes), "explanation", ...}], ...figures}; "unknown" when the history lacks what
it needs (no final tree, no follower reads, ...).

  serializable  cycles in the ww/wr/rw + real-time/session dependency graph (G0, G1c,
                G-single, G2; "strict" when an order edge is needed)
  replay        commits replayed on the model file system; reads within their windows
  lost          acknowledged writes present at the end, or documented lost by a promotion
  prefix        follower reads: log prefixes, monotonic, read-your-writes
  tree          the final tree is one rooted tree and fsck is clean
  recovery      seconds from each heal to the next ok call
"""

from __future__ import annotations

from jepsen.checkers import lost, prefix, recovery, replay, serializable, tree
from jepsen.checkers.common import History
from jepsen.history import Op

CHECKERS = {"serializable": serializable.check, "replay": replay.check, "lost": lost.check,
            "prefix": prefix.check, "tree": tree.check, "recovery": recovery.check}


def check_all(ops: list[Op]) -> dict[str, dict]:
    """Every checker's result by name; the history is indexed (and replayed) once."""
    h = History(list(ops))
    return {name: check(h) for name, check in CHECKERS.items()}
