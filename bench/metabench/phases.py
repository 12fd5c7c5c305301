"""Phases: the ordered list of timed phases a run does, their names, and the target
operation each one maps to. Every process derives the same plan from the Config."""

from __future__ import annotations

from dataclasses import dataclass

from metabench.config import Config

KIND_WORDS = {"tree": "Tree", "dir": "Directory", "file": "File"}
OP_WORDS = {"create": "creation", "stat": "stat", "read": "read", "rename": "rename",
            "remove": "removal"}
# The target operation of a phase, by kind of item.
TARGET_OP = {("dir", "create"): "mkdir", ("file", "create"): "create",
             ("dir", "remove"): "rmdir", ("file", "remove"): "unlink",
             ("tree", "create"): "mkdir", ("tree", "remove"): "rmdir"}


@dataclass(frozen=True)
class Phase:
    iteration: int
    kind: str       # "tree", "dir", "file"
    op: str         # "create", "stat", "read", "rename", "remove"

    @property
    def key(self) -> str:
        """Name of the phase across iterations, as in the JSON: "file_create"."""
        return f"{self.kind}_{self.op}"

    @property
    def title(self) -> str:
        """mdtest's name for it: "File creation"."""
        return title(self.key)

    @property
    def target_op(self) -> str:
        return TARGET_OP.get((self.kind, self.op), self.op)


def title(key: str) -> str:
    kind, op = key.split("_")
    return f"{KIND_WORDS[kind]} {OP_WORDS[op]}"


def item_kinds(c: Config) -> list[str]:
    """Directories first, then files, as mdtest runs them."""
    return [kind for kind, on in (("dir", c.dirs), ("file", c.files)) if on]


def item_phases(c: Config, kind: str) -> list[str]:
    return [op for op in c.phases if not (kind == "dir" and op == "read")]


def plan(c: Config) -> list[Phase]:
    phases = []
    for iteration in range(c.iterations):
        phases.append(Phase(iteration, "tree", "create"))
        for kind in item_kinds(c):
            phases += [Phase(iteration, kind, op) for op in item_phases(c, kind)]
        phases.append(Phase(iteration, "tree", "remove"))
    return phases
