"""Serializability: a dependency graph over the calls, searched for cycles (Adya's G0,
G1c, G-single, G2).

Objects and their versions, in commit order (History.commits):
  register   ("size", ino): setattr size writes; a getattr's size says which version it
             read (sizes are unique per write; version 0 is the creation's size 0)
  directory  ("dir", ino): each create/mknod/mkdir/symlink/link/unlink/rmdir/rename that
             changes the directory is a version; a readdir's listing says which one
             (listings compared by fingerprint)
A read is placed at the one version with its value; a follower read, a listing, or a
value several versions have, at the one current within its window (History.window),
else it is left out. Edges: ww (a version to the next), wr (a version to its readers), rw (a
reader to the next version's writer), and the order edges: real time (A completed before
B was invoked; follower reads are exempt, they promise a prefix, not recency) and session
(a process's consecutive calls). Tarjan's SCCs, then per SCC one shortest cycle, the
weakest kind first; "strict" says the cycle needs an order edge.
"""

from __future__ import annotations

from collections import defaultdict, deque

from jepsen.checkers.common import Call, History, anomaly, history, unknown, verdict
from jepsen.checkers.replay import fingerprint
from jepsen.history import OK
from metaserver.testing.model_fs import EXCHANGE

WW, WR, RW, RT, SESSION = "ww", "wr", "rw", "realtime", "session"
_ADDS = frozenset({"create", "mknod", "mkdir", "symlink", "link"})
_REMOVES = frozenset({"unlink", "rmdir"})
_ORDER = frozenset({RT, SESSION})
_MAX_RW_TRIES = 64          # rw edges tried per SCC for a G-single (a bound on search time)


def _writes(call: Call) -> list[tuple[tuple, object]]:
    """The objects a commit writes: (object, change)."""
    a, f = call.args, call.f
    if f == "setattr" and "size" in a:
        return [(("size", a["ino"]), a["size"])]
    if f in _ADDS:
        return [(("dir", a["parent"]), (a["name"], True))]
    if f in _REMOVES:
        return [(("dir", a["parent"]), (a["name"], False))]
    if f == "rename" and not a.get("flags", 0) & EXCHANGE and \
            (a["parent"], a["name"]) != (a["new_parent"], a["new_name"]):
        return [(("dir", a["parent"]), (a["name"], False)),
                (("dir", a["new_parent"]), (a["new_name"], True))]
    return []


def _read(call: Call) -> tuple[tuple, object] | None:
    """The object an ok read observes, and the value it saw."""
    if call.f == "getattr" and isinstance(call.result, dict) and "size" in call.result:
        return ("size", call.args["ino"]), call.result["size"]
    if call.f == "readdir" and isinstance(call.result, list):
        return ("dir", call.args["ino"]), fingerprint(call.result)
    return None


class _Graph:
    def __init__(self) -> None:
        self.out: dict[int, list[tuple[int, str]]] = defaultdict(list)

    def add(self, a: Call, b: Call, label: str) -> None:
        if a is not b:
            self.out[a.id].append((b.id, label))


def _versions(h: History) -> dict[tuple, tuple[list[Call], list[object], list[int]]]:
    """Per object: its writers, the value after each version (index 0: initial), and each
    writer's position."""
    objects: dict[tuple, tuple[list, list, list]] = {}
    names: dict[tuple, set[str]] = defaultdict(set)
    for p, call in enumerate(h.commits, start=1):
        if call.id in h.floating:
            continue                    # its place in the version order is unknown
        for obj, change in _writes(call):
            if obj not in objects:
                objects[obj] = ([], [0 if obj[0] == "size" else (0, 0)], [])
            writers, values, positions = objects[obj]
            if obj[0] == "dir":
                name, present = change
                count, fp = values[-1]
                if present != (name in names[obj]):
                    (names[obj].add if present else names[obj].discard)(name)
                    count, fp = count + (1 if present else -1), fp ^ hash(name)
                change = (count, fp)
            writers.append(call)
            values.append(change)
            positions.append(p)
    return objects


def _graph(h: History) -> _Graph:
    g = _Graph()
    objects = _versions(h)
    for writers, _, _ in objects.values():
        for a, b in zip(writers, writers[1:]):
            g.add(a, b, WW)
    by_value: dict[tuple, dict[object, list[int]]] = {}
    for call in h.calls:
        seen = _read(call) if call.type == OK and call.is_read else None
        if seen is None or seen[0] not in objects or h.window(call) is None:
            continue
        obj, value = seen
        writers, values, positions = objects[obj]
        if obj not in by_value:
            by_value[obj] = defaultdict(list)
            for k, v in enumerate(values):
                by_value[obj][v].append(k)
        candidates = by_value[obj].get(value, [])
        if len(candidates) > 1 or call.seq is not None or obj[0] == "dir":
            # Only a version current somewhere in the read's window (version k is
            # current from positions[k-1] up to the next writer's). A listing comes back
            # (files move back and forth, an unknown-outcome write has no version here),
            # and a follower read's seq is where it read: a same-valued version outside
            # the window is another one. A read matching none is the replay checker's.
            # A register's values are unique: its one version stands, even if stale.
            lo, hi = h.window(call)
            candidates = [k for k in candidates
                          if (positions[k - 1] if k else 0) <= hi
                          and (k == len(writers) or positions[k] > lo)]
        if len(candidates) != 1:
            continue
        k = candidates[0]
        if k:
            g.add(writers[k - 1], call, WR)
        if k < len(writers):
            g.add(call, writers[k], RW)
    _order_edges(h, g)
    return g


def _order_edges(h: History, g: _Graph) -> None:
    """Real-time edges through a frontier (each op linked to the latest ops that precede
    it; the rest follow transitively), and session edges."""
    events = []
    for c in h.calls:
        if c.type == OK and not c.follower_read and h.window(c) is not None or \
                not c.is_read and h.positioned(c):
            events.append((c.start, 0, c))
            if c.type == OK:
                events.append((c.end, 1, c))
    events.sort(key=lambda e: (e[0], e[1]))      # at one instant, invocations first
    frontier: list[Call] = []
    for _, kind, c in events:
        if kind == 0:
            for a in frontier:
                g.add(a, c, RT)
        else:
            frontier = [a for a in frontier if a.end >= c.start] + [c]
    last: dict[int | str, Call] = {}
    for c in h.calls:
        if c.type == OK:
            if c.process in last:
                g.add(last[c.process], c, SESSION)
            last[c.process] = c


def _sccs(nodes: list[int], out: dict[int, list[tuple[int, str]]],
          allowed: frozenset[str]) -> list[list[int]]:
    """Tarjan's strongly connected components (iterative), over edges with allowed labels,
    of more than one node."""
    members = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack, on_stack, found = [], set(), []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            edges = out.get(v, ())
            while i < len(edges):
                w, label = edges[i]
                i += 1
                if label not in allowed or w not in members:
                    continue
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
    return found


def _path(out, members: set[int], start: int, goal: int,
          allowed: frozenset[str]) -> list[tuple[int, str]] | None:
    """Shortest path start -> goal (BFS) inside members: [(node, label of edge into it)]."""
    came: dict[int, tuple[int, str]] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w, label in out.get(v, ()):
            if label in allowed and w in members and w not in came and w != start:
                came[w] = (v, label)
                if w == goal:
                    path = []
                    while w != start:
                        v, label = came[w]
                        path.append((w, label))
                        w = v
                    return path[::-1]
                queue.append(w)
    return None


def _cycle(out, component: list[int]) -> list[tuple[int, str]] | None:
    """One shortest cycle of the component, weakest kind first: [(node, label into it)],
    the last node being the first."""
    members = set(component)
    for order in (frozenset(), _ORDER):
        for labels in ({WW}, {WW, WR}):
            allowed = frozenset(labels) | order
            for sub in _sccs(component, out, allowed):
                cycle = _closing(out, set(sub), sub[0], allowed)
                if cycle:
                    return cycle
        allowed = frozenset({WW, WR}) | order
        best = None
        rw_edges = [(v, w) for v in component for w, label in out.get(v, ())
                    if label == RW and w in members]
        for v, w in rw_edges[:_MAX_RW_TRIES]:
            back = _path(out, members, w, v, allowed)
            if back is not None and (best is None or len(back) + 1 < len(best)):
                best = [(w, RW), *back]
        if best:
            return best
        allowed = frozenset({WW, WR, RW}) | order
        for sub in _sccs(component, out, allowed):
            return _closing(out, set(sub), sub[0], allowed)
    return None


def _closing(out, members: set[int], start: int, allowed) -> list[tuple[int, str]] | None:
    """A shortest cycle through start: to a predecessor of start, then the edge back."""
    best = None
    for v in members:
        for w, label in out.get(v, ()):
            if w == start and label in allowed:
                path = _path(out, members, start, v, allowed) if v != start else []
                if path is not None and (best is None or len(path) + 1 < len(best)):
                    best = [*path, (start, label)]
    return best


def _classify(labels: list[str]) -> str:
    rw = labels.count(RW)
    if rw == 1:
        return "G-single"
    if rw > 1:
        return "G2"
    return "G1c" if WR in labels else "G0"


def check(ops) -> dict:
    h = history(ops)
    if not h.commits:
        return unknown("no positioned commits")
    g = _graph(h)
    anomalies = []
    nodes = sorted(g.out)
    for component in _sccs(nodes, g.out, frozenset({WW, WR, RW, RT, SESSION})):
        cycle = _cycle(g.out, component)
        if cycle is None:
            continue
        labels = [label for _, label in cycle]
        calls = [h.calls[v] for v, _ in cycle]
        steps = " ".join(f"-{label}-> {call!r}" for call, label in zip(calls, labels))
        anomalies.append(anomaly(_classify(labels), calls, f"{calls[-1]!r} {steps}",
                                 strict=any(label in _ORDER for label in labels),
                                 component_size=len(component)))
    return verdict(anomalies, edges=sum(len(v) for v in g.out.values()))
