"""Replay: the history's commits, applied in commit order to the model file system, must
be accepted with the results the server gave, and every ok read must equal the model's
state at some position of its window (History.window).

Real inode numbers are translated to the model's as creation results reveal them (setup
included). A read naming an inode never revealed is left unchecked.

Info mutations without a seq may or may not have happened. The replay applies one only
when a later call it is relevant to (_Replayer.resolve, .relevant) disagrees with the
model, it was invoked before that call completed, and applying it makes the call agree:
that is the evidence it happened (docs/jepsen.md, "Unknown outcomes"). The others stay
"indeterminate" (a figure). Floating commits (History.floating: their seq is only an
upper bound) are applied the same way, and at their seq at the latest; one applied on
evidence lands after the call that needed it, so its own result is not checked. A
follower read (one with a seq) that matches no
state of its window is the prefix checker's anomaly, not this one's; final observations
are matched at the last position and their differences are the lost-write checker's.
"""

from __future__ import annotations

import copy
import errno
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from typing import Any

from jepsen.checkers.common import Call, History, anomaly, history, unknown, verdict
from jepsen.client import READS
from jepsen.history import INFO, OK, Op
from metaserver.errors import FsError
from metaserver.testing.model_fs import ModelFS
from metaserver.types import ROOT_INO, SetAttrMask

_ENTRY_RESULTS = frozenset({"mkdir", "create", "mknod", "symlink", "link", "lookup"})
_NAMES = ("name", "new_name", "target")


class Unmapped(Exception):
    """The call names a real inode the replay has not seen created."""


def fingerprint(names: list[str]) -> tuple[int, int]:
    """A directory listing as (count, xor of name hashes): updated per entry in O(1)."""
    return len(names), reduce(xor, map(hash, names), 0)


@dataclass
class Replay:
    anomalies: list[dict] = field(default_factory=list)          # this checker's
    prefix_anomalies: list[dict] = field(default_factory=list)   # follower reads
    final_mismatches: list[dict] = field(default_factory=list)   # for the lost checker
    figures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    model: ModelFS = field(default_factory=ModelFS)
    last_writer: dict[Any, Call] = field(default_factory=dict)   # model object -> call


class _Replayer:
    def __init__(self, h: History) -> None:
        self.h = h
        self.out = Replay()
        self.model = self.out.model
        self.to_model = {ROOT_INO: ROOT_INO}
        self.fp: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
        # mutations whose place is unknown: info ones without a seq, and floating ones
        self.pending: list[Call] = []
        for c in h.calls:
            if not c.is_read and (c.type == INFO and c.seq is None or c.id in h.floating):
                self.out.figures["floating" if c.seq else "indeterminate"] += 1
                self.pending.append(c)
        self.seen = _names_seen(h)
        self.position = 0                        # commits applied so far
        self.evidence_at: dict[int, list[int]] = defaultdict(list)   # model ino -> positions
        self.touched_by_evidence: set[int] = set()
        self.guessed: set[int] = set()        # model inodes an unknown rename was guessed on
        self.applied: set[int] = set()
        self.touched: set[int] = set()           # model inodes the last apply() changed
        self.observed_fp: dict[int, tuple[int, int]] = {}    # op index -> its listing's

    # --- translation --------------------------------------------------------------------
    def model_args(self, call: Call) -> dict[str, Any]:
        out = {}
        for key, value in call.args.items():
            if key in ("ino", "parent", "new_parent"):
                if value not in self.to_model:
                    raise Unmapped(value)
                value = self.to_model[value]
            elif key in _NAMES:
                value = os.fsencode(value)
            out[key] = value
        return out

    def model_call(self, call: Call) -> Any:
        a = self.model_args(call)
        m, f = self.model, call.f
        if f == "setattr":
            # only mode and size are modelled
            mask = (SetAttrMask.MODE if "mode" in a else 0) | (SetAttrMask.SIZE if "size" in a else 0)
            return m.setattr(ino=a["ino"], mask=int(mask), mode=a.get("mode", 0),
                             size=a.get("size", 0))
        if f == "mknod":
            return m.mknod(parent=a["parent"], name=a["name"], type=a.get("type", 1),
                           mode=a.get("mode", 0o644))
        if f in ("create", "mkdir"):
            return getattr(m, f)(parent=a["parent"], name=a["name"],
                                 **({"mode": a["mode"]} if "mode" in a else {}))
        if f == "symlink":
            return m.symlink(parent=a["parent"], name=a["name"], target=a["target"])
        if f == "readdir":
            return m.readdir(ino=a["ino"])
        if f == "setxattr":
            return m.setxattr(ino=a["ino"], name=a["name"], value=os.fsencode(a["value"]),
                              flags=a.get("flags", 0))
        return getattr(m, f)(**a)

    # --- mutations ----------------------------------------------------------------------
    def entries_touched(self, call: Call) -> list[tuple[int, str]]:
        a = call.args
        return [(self.to_model[a[p]], a[n]) for p, n in (("parent", "name"),
                                                         ("new_parent", "new_name"))
                if p in a and n in a and a[p] in self.to_model]

    def present(self, entries: list[tuple[int, str]]) -> list[bool]:
        nodes = self.model.nodes
        return [d in nodes and os.fsencode(n) in nodes[d].entries for d, n in entries]

    def apply(self, call: Call) -> Any:
        """Run a mutation on the model (raises FsError, Unmapped), keeping the directory
        fingerprints and the last writer of each entry and inode."""
        touched = self.entries_touched(call)
        before = self.present(touched)
        self.touched = self.model_inos(call) | self.targets(touched)
        value = self.model_call(call)
        self.touched |= self.targets(touched) | ({value} if isinstance(value, int) else set())
        for (d, name), was, now in zip(touched, before, self.present(touched)):
            self.out.last_writer[(d, name)] = call
            if was != now:
                count, h = self.fp[d]
                self.fp[d] = (count + (1 if now else -1), h ^ hash(name))
        for ino in self.touched:
            self.out.last_writer[ino] = call
        return value

    def model_inos(self, call: Call) -> set[int]:
        return {self.to_model[i] for i in call.inos if i in self.to_model}

    def targets(self, entries: list[tuple[int, str]]) -> set[int]:
        """The inodes those entries name now."""
        nodes = self.model.nodes
        found = (nodes[d].entries.get(os.fsencode(n)) if d in nodes else None for d, n in entries)
        return {ino for ino in found if ino is not None}

    def mutation(self, call: Call) -> None:
        try:
            value = self.apply(call)
        except Unmapped:
            self.out.figures["unchecked"] += 1
            return
        except FsError as exc:
            if call.type == OK and self.resolve(call, lambda: self.would_apply(call)) \
                    and self.retry(call):
                return
            if call.type == OK and self.model_inos(call) & self.guessed:
                self.out.figures["unchecked_after_evidence"] += 1
            elif call.type == OK:
                self.out.anomalies.append(anomaly(
                    "refused", [call], f"acknowledged {call.f}{_show(call.args)} at {call.seq}, "
                    f"but the model refuses it at that point with {errno.errorcode[exc.errno]}"))
            return
        if call.type == OK:
            self.check_result(call, value)

    def would_apply(self, call: Call) -> bool:
        """Whether the model would accept `call` now (tried on a copy)."""
        saved = self.model
        self.model = copy.deepcopy(saved)
        try:
            self.model_call(call)
            return True
        except (FsError, Unmapped):
            return False
        finally:
            self.model = saved

    def retry(self, call: Call) -> bool:
        try:
            value = self.apply(call)
        except (FsError, Unmapped):
            return False
        self.check_result(call, value)
        return True

    def check_result(self, call: Call, value: Any) -> None:
        result = call.result
        if call.f not in _ENTRY_RESULTS or not isinstance(result, dict) or "ino" not in result:
            return
        known = self.to_model.setdefault(result["ino"], value)
        wrong = self.entry_differs(call, value, result) if known == value else \
            f"inode {result['ino']} is already model inode {known}, not {value}"
        if wrong and self.resolve(call, lambda: not self.entry_differs(call, value, result)):
            wrong = self.entry_differs(call, value, result)
        if wrong:
            self.out.anomalies.append(anomaly(
                "wrong-result", [call], f"{call.f}{_show(call.args)} at {call.seq}: {wrong}"))

    def entry_differs(self, call: Call, model_ino: int, result: dict) -> str | None:
        node = self.model.nodes.get(model_ino)
        if node is None:
            return "the model has no such inode"
        for key, want in (("type", int(node.type)), ("nlink", node.nlink)):
            if key in result and result[key] != want:
                return f"{key} {result[key]}, the model says {want}"
        return None

    def resolve(self, call: Call, satisfied, explaining: bool = False) -> bool:
        """Apply pending info calls relevant to `call`, invoked before it completed (see
        the module docstring), one at a time, those that explain it
        first, until `satisfied()` (the read matches, the mutation is accepted): the
        rest stay pending. True if that happened; if nothing satisfies, all is undone.
        `explaining`: only those that explain a read (its unique value or name), applied
        as soon as the read starts, where its window begins."""
        pending = (info for info in self.pending
                   if info.id not in self.applied and info.start < call.end)
        candidates = sorted((info for info in pending if self.relevant(info, call)
                             and (_explains(info, call) or not explaining)),
                            key=lambda info: (not _explains(info, call), info.start))
        if not candidates:
            return False
        # Evidence that nothing satisfies proves nothing: then all is undone.
        saved = self.save()
        self.touched_by_evidence = set()
        for info in candidates:
            try:
                value = self.apply(info)
            except (FsError, Unmapped):
                continue            # it cannot have happened here
            self.applied.add(info.id)
            self.touched_by_evidence |= self.touched
            if info.f == "rename":
                # A rename's names come back (files move to and fro): which of several
                # unknown ones happened is a guess from then on, for what it touched.
                self.guessed |= self.touched
            self.out.figures["applied_on_evidence"] += 1
            result = info.result      # floating: its true place was before `call`
            if isinstance(result, dict) and "ino" in result:
                self.to_model.setdefault(result["ino"], value)
            if satisfied():
                for ino in self.touched_by_evidence:
                    self.evidence_at[ino].append(self.position)
                return True
        self.restore(saved)
        return False

    def relevant(self, info: Call, call: Call) -> bool:
        """Whether `info` changes what `call` saw or needed: the listing it read, an
        entry it used, or the inode it read or made (an unlink or rename changes the
        inode its name leads to, which its arguments do not name: the names are looked
        up in the model as it is now)."""
        a, b = info.args, call.args
        made = (a.get("new_parent", a.get("parent")), a.get("new_name", a.get("name")))
        if info.f in _MAKES and made not in self.seen:
            return False        # a name nobody ever saw: no call shows it happened
        removed = (a.get("parent"), a.get("name"))
        if info.f in _REMOVES and self.seen.get(removed, -1.0) > info.end:
            return False        # the name was there after it ended (names are not reused)
        if call.f == "readdir":
            listing = call.result or []
            if info.f in _MAKES and made[0] == b.get("ino"):
                return made[1] in listing
            return a.get("parent") == b.get("ino") and a.get("name") not in listing
        theirs = {(a.get("parent"), a.get("name")), (a.get("new_parent"), a.get("new_name"))}
        mine = {(b.get("parent"), b.get("name")), (b.get("new_parent"), b.get("new_name"))}
        if (mine - {(None, None)}) & theirs:
            return True
        result = call.result if isinstance(call.result, dict) else {}
        inos = {i for i in (b.get("ino"), result.get("ino")) if i is not None}
        if a.get("ino") in inos:
            return True
        wanted = {self.to_model[i] for i in inos if i in self.to_model}
        moved = self.targets(self.entries_touched(info))
        if wanted & moved:
            return True
        # A directory moved above where a rename puts its directory decides whether
        # that rename would make a cycle (EINVAL), though no name of it is shared.
        new_parent = self.to_model.get(b.get("new_parent"))
        return (call.f == info.f == "rename" and new_parent in self.model.nodes
                and any(self.model.is_ancestor(ino, new_parent) for ino in moved
                        if ino in self.model.nodes))

    def save(self) -> tuple:
        return (copy.deepcopy(self.model), defaultdict(lambda: (0, 0), self.fp),
                dict(self.to_model), dict(self.out.last_writer), set(self.applied),
                self.out.figures["applied_on_evidence"], set(self.guessed))

    def restore(self, saved: tuple) -> None:
        (self.model, self.fp, self.to_model, self.out.last_writer, self.applied,
         self.out.figures["applied_on_evidence"], self.guessed) = saved
        self.out.model = self.model

    # --- reads --------------------------------------------------------------------------
    def matches(self, call: Call | Op) -> bool | None:
        """The read's result equals the model's answer now (None: cannot tell)."""
        f, result = call.f, call.result
        try:
            a = self.model_args(call)
            if f == "readdir":
                ino = a["ino"]
                self.model.dir(ino)
                if call.index not in self.observed_fp:
                    self.observed_fp[call.index] = fingerprint(result)
                return self.fp[ino] == self.observed_fp[call.index]
            if f == "getattr":
                want = self.model.getattr(ino=a["ino"])
                return all(result.get(k) == want[k] if k != "mode" else
                           result[k] & 0o7777 == want[k]
                           for k in ("type", "size", "nlink", "mode") if k in result)
            if f == "lookup":
                ino = self.model.lookup(parent=a["parent"], name=a["name"])
                node = self.model.nodes[ino]
                real = result.get("ino")
                return ((real not in self.to_model or self.to_model[real] == ino)
                        and all(result[k] == v for k, v in (("type", int(node.type)),
                                                            ("nlink", node.nlink))
                                if k in result))
            if f in ("getxattr", "readlink"):
                return os.fsencode(result) == self.model_call(call)
            if f == "listxattr":
                return sorted(os.fsencode(n) for n in result) == self.model_call(call)
        except Unmapped:
            return None
        except FsError:
            return False
        return None                     # statfs and the like: not modelled

    def run(self) -> Replay:
        h, out = self.h, self.out
        starting: dict[int, list[Call]] = defaultdict(list)
        for c in h.calls:
            if c.is_read and c.type == OK:
                window = h.window(c)
                if window is None:
                    out.figures["deposed_reads"] += 1
                else:
                    starting[window[0]].append(c)
            elif not c.is_read and c.type == OK and c.seq is None:
                out.figures["unpositioned"] += 1      # wrote nothing: no place in the order
        waiting: dict[int, list[tuple[Call, int]]] = defaultdict(list)   # model inode -> reads
        ending: dict[int, list[Call]] = defaultdict(list)
        done: set[int] = set()

        def evaluate(read: Call) -> None:
            seen = self.matches(read)
            if seen is None:
                out.figures["unchecked"] += 1
                done.add(read.id)
            elif seen:
                out.figures["reads_checked"] += 1
                done.add(read.id)

        for p in range(len(h.commits) + 1):
            self.position = p
            if p:
                self.touched = set()
                commit = h.commits[p - 1]
                if commit.id not in self.applied:     # a floating one may be in already
                    self.applied.add(commit.id)
                    self.mutation(commit)
                    if commit.id in h.floating and commit.f == "rename":
                        self.guessed |= self.touched     # placed at its latest bound
                for ino in self.touched:
                    for read in waiting.get(ino, ()):
                        if read.id not in done:
                            evaluate(read)
            for read in starting.get(p, ()):
                lo, hi = h.window(read)
                evaluate(read)
                if read.id not in done and self.resolve(read, lambda: True, explaining=True):
                    evaluate(read)
                if read.id not in done:
                    ending[max(hi, p)].append(read)
                    for ino in read.inos:
                        if ino in self.to_model:
                            waiting[self.to_model[ino]].append(read)
            for read in ending.pop(p, ()):
                if read.id not in done:
                    evaluate(read)
                if read.id not in done:
                    self.unmatched(read)
        for op in h.finals:
            if op.f not in ("tree", "fsck") and self.matches(op) is False:
                self.final_mismatch(op)
        return out

    def unmatched(self, read: Call) -> None:
        if self.resolve(read, lambda: self.matches(read) is True) and self.matches(read):
            self.out.figures["reads_checked"] += 1
            return
        lo, hi = self.h.window(read)
        if self.model_inos(read) & self.guessed or any(
                lo <= at <= hi + 1 for ino in self.model_inos(read)
                for at in self.evidence_at.get(ino, ())):
            # Unknown writes were placed on this inode, by later evidence, inside the
            # read's window: where exactly they fell is a guess, so the read proves
            # nothing either way.
            self.out.figures["unchecked_after_evidence"] += 1
            return
        text = (f"{read.f}{_show(read.args)} by process {read.process} returned "
                f"{_short(read.result)}, which no state at positions {lo}..{hi} has")
        if read.follower_read:
            self.out.prefix_anomalies.append(anomaly(
                "non-prefix", [read], f"follower read at {read.seq}: " + text))
        else:
            writes = [c for c in self.h.commits[:lo] if read.inos & c.inos][-3:]
            self.out.anomalies.append(anomaly("stale-read", [read, *writes], text))

    def final_mismatch(self, op: Op) -> None:
        """What a final observation is missing or has extra, with the writes concerned."""
        self.resolve(Call(-1, op, op), lambda: self.matches(op) is True)
        if self.matches(op) is not False:
            return
        d = self.to_model[op.args["ino"]] if op.f in ("readdir", "getattr") else None
        if op.f == "readdir":
            model = {os.fsdecode(n) for n in self.model.readdir(ino=d)}
            seen = set(op.result)
            for name in sorted(model - seen):
                self.out.final_mismatches.append({"missing": name, "op": op,
                                                  "writer": self.out.last_writer.get((d, name))})
            for name in sorted(seen - model):
                self.out.final_mismatches.append({"extra": name, "op": op,
                                                  "writer": self.out.last_writer.get((d, name))})
        else:
            self.out.final_mismatches.append({"differs": op.result, "op": op,
                                              "writer": self.out.last_writer.get(d)})


def _show(args: dict) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def analyse(ops) -> Replay:
    """The replay of a history, computed once per History and shared by the checkers."""
    h = history(ops)
    if "replay" not in h.cache:
        h.cache["replay"] = _Replayer(h).run()
    return h.cache["replay"]


def check(ops) -> dict:
    h = history(ops)
    if not h.commits:
        return unknown("no positioned commits")
    r = analyse(h)
    return verdict(r.anomalies, commits=len(h.commits), **r.figures)


_MAKES = frozenset({"create", "mknod", "mkdir", "symlink", "link", "rename"})
_REMOVES = frozenset({"unlink", "rmdir"})   # the workloads never make a name twice


def _names_seen(h: History) -> dict[tuple[int, str], float]:
    """(directory, name) pairs some call showed present (in a listing, or used by an
    acknowledged call that needs the name to exist), with the latest such call's start."""
    seen: dict[tuple[int, str], float] = {}

    def saw(key: tuple, when: float) -> None:
        seen[key] = max(seen.get(key, when), when)
    for c in [*h.calls, *(Call(-1, op, op) for op in h.finals)]:
        if c.type != OK:
            continue
        if c.f == "readdir" and isinstance(c.result, list):
            for name in c.result:
                saw((c.args["ino"], name), c.start)
        elif c.f in ("unlink", "rmdir", "rename", "lookup"):
            saw((c.args.get("parent"), c.args.get("name")), c.start)
    return seen


def _explains(info: Call, read: Call | Op) -> bool:
    """Whether an unknown-outcome write would leave what the read returned (the size it
    set, a name it made in the listing) or make the name a refused mutation needs."""
    if read.f not in READS:     # a refused mutation: the info made the name it needs
        made = (info.args.get("new_parent", info.args.get("parent")),
                info.args.get("new_name", info.args.get("name")))
        return made == (read.args.get("parent"), read.args.get("name"))
    result = read.result
    if info.f == "setattr" and isinstance(result, dict):
        return "size" in info.args and result.get("size") == info.args["size"]
    if isinstance(result, list):
        return any(info.args.get(k) in result for k in ("name", "new_name"))
    return False
