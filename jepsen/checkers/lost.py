"""Lost writes: every acknowledged mutation's effect must be in the final observations
unless a promotion documented it lost, and a promotion's "lost" list must be exactly the
acknowledged commits of the old epoch beyond its fork.

The expected final state is the replay's model after the whole commit order (which
leaves the lost commits out). A name the model has and the final listing lacks, or a
final getattr that differs, is charged to the last mutation that wrote it.

Figures: acknowledged (ok mutations), present (acknowledged, neither documented lost nor
missing), lost_documented, lost_undocumented.
"""

from __future__ import annotations

from jepsen.checkers import replay
from jepsen.checkers.common import anomaly, history, unknown, verdict
from jepsen.history import OK


def check(ops) -> dict:
    h = history(ops)
    acked = [c for c in h.calls if not c.is_read and c.type == OK]
    anomalies: list[dict] = []
    documented: set[int] = set()
    for fork in h.forks:
        beyond = {c.seq: c for c in acked if c.seq is not None and fork.beyond(c.seq)}
        listed = set(fork.lost or ())
        for key in sorted(listed):
            if not fork.beyond(key):
                anomalies.append(anomaly(
                    "lost-not-beyond-fork", [c for c in acked if c.seq == key],
                    f"the promotion to epoch {fork.new_epoch} at {fork.old_epoch}:"
                    f"{fork.fork_seq} lists {list(key)} as lost, which is not beyond its fork"))
        for key, call in sorted(beyond.items()):
            if key in listed:
                documented.add(call.id)
            else:
                anomalies.append(anomaly(
                    "lost-unlisted", [call],
                    f"acknowledged {call.f} at {list(key)} is beyond the fork at "
                    f"{fork.old_epoch}:{fork.fork_seq} (lost) but the promotion's lost list "
                    + ("does not name it" if fork.lost is not None else "was never recorded")))
    finals = [op for op in h.finals if op.f not in ("tree", "fsck")]
    if not finals:
        return unknown("no final observations", acknowledged=len(acked),
                       lost_documented=len(documented))
    missing: set[int] = set()
    for m in replay.analyse(h).final_mismatches:
        writer, op = m["writer"], m["op"]
        if "extra" in m:
            anomalies.append(anomaly(
                "unexpected-entry", [op, *([writer] if writer else [])],
                f"final {op.f} of {op.args} shows {m['extra']!r}, which no acknowledged "
                "commit left there"))
            continue
        what = (f"lacks {m['missing']!r}" if "missing" in m
                else f"returned {m['differs']}, not what the commit order leaves")
        if writer is not None and writer.type == OK:
            missing.add(writer.id)
        anomalies.append(anomaly(
            "lost-write", [op, *([writer] if writer else [])],
            f"final {op.f}{op.args} {what}"
            + (f": the last write was {writer.f}{writer.args} at {writer.seq}" if writer else "")))
    return verdict(anomalies, acknowledged=len(acked),
                   present=len(acked) - len(documented) - len(missing),
                   lost_documented=len(documented),
                   lost_undocumented=len(missing) + sum(a["kind"] == "lost-unlisted"
                                                        for a in anomalies))
