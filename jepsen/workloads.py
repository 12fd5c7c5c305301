"""Workloads: what the client processes do, as pure data.

A workload builds its starting tree once (`setup`, through a Session of process
"setup", so the checkers see every inode it made), then hands each process a stream of
operations from that process's own seeded random generator (`next`): the same seed gives
the same operations. Each operation is one API call, `Planned(kind, f, args)`: `kind` says
whether it reads or writes (the runner routes it by that), `args` are the call's keyword
arguments with real inode numbers. `finals` lists the reads made after the heal, whose
results the lost-write checks compare with what was acknowledged.

  register  setattr size / getattr on a few files: one register per path
  set       unique creates in a few shared directories, with occasional listings
  rename    a rename storm across directories, including the cycle pair
            (a -> b/d/e/a while b/d -> a/c/d), and files shuffled between directories
  links     hard-link churn: link, unlink, nlink and listings of one directory
  mixed     all of the above, picked at random per operation
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from jepsen.history import OK
from metaserver.types import ROOT_INO

READ, WRITE = "read", "write"


@dataclass(frozen=True)
class Planned:
    """An operation a workload means to invoke (jepsen.checkers' Call is one that ran)."""
    kind: str
    f: str
    args: dict[str, Any]


class Setup:
    """Makes the starting tree through one session and remembers the inodes."""

    def __init__(self, invoke) -> None:
        self._invoke = invoke       # (f, args) -> completion Op

    def make(self, f: str, **args) -> int:
        op = self._invoke(f, args)
        if op.type != OK:
            raise RuntimeError(f"setup: {f}({args}) ended {op.type} {op.error or ''}")
        return op.result["ino"]


class Workload:
    name = ""

    def setup(self, setup: Setup) -> None:
        raise NotImplementedError

    def next(self, rng: random.Random, process: int) -> Planned:
        raise NotImplementedError

    def finals(self) -> list[Planned]:
        raise NotImplementedError


class Register(Workload):
    name = "register"
    KEYS = 5

    def setup(self, setup: Setup) -> None:
        top = setup.make("mkdir", parent=ROOT_INO, name="reg")
        self.inos = [setup.make("create", parent=top, name=f"k{i}") for i in range(self.KEYS)]
        self._writes: dict[int, itertools.count] = {}

    def next(self, rng: random.Random, process: int) -> Planned:
        ino = rng.choice(self.inos)
        if rng.random() < 0.5:
            # unique per write (process, count), so a read says which write it saw
            n = next(self._writes.setdefault(process, itertools.count(1)))
            return Planned(WRITE, "setattr", {"ino": ino, "size": (process + 1) * 10**8 + n})
        return Planned(READ, "getattr", {"ino": ino})

    def finals(self) -> list[Planned]:
        return [Planned(READ, "getattr", {"ino": ino}) for ino in self.inos]


class UniqueSet(Workload):
    name = "set"

    DIRS = 8        # a listing is one page (at most READDIR_MAX names): spread the names

    def setup(self, setup: Setup) -> None:
        top = setup.make("mkdir", parent=ROOT_INO, name="set")
        self.dirs = [setup.make("mkdir", parent=top, name=f"s{i}") for i in range(self.DIRS)]
        self._names: dict[int, itertools.count] = {}

    def next(self, rng: random.Random, process: int) -> Planned:
        if rng.random() < 0.03:
            return Planned(READ, "readdir", {"ino": rng.choice(self.dirs)})
        n = next(self._names.setdefault(process, itertools.count()))
        return Planned(WRITE, "create", {"parent": rng.choice(self.dirs), "name": f"p{process}-{n}"})

    def finals(self) -> list[Planned]:
        return [Planned(READ, "readdir", {"ino": ino}) for ino in self.dirs]


class RenameStorm(Workload):
    name = "rename"
    DIRS, FILES = 4, 8

    def setup(self, setup: Setup) -> None:
        a = setup.make("mkdir", parent=ROOT_INO, name="a")
        b = setup.make("mkdir", parent=ROOT_INO, name="b")
        c = setup.make("mkdir", parent=a, name="c")
        d = setup.make("mkdir", parent=b, name="d")
        e = setup.make("mkdir", parent=d, name="e")
        # (parent, name, new parent, new name): the cycle pair and the moves back
        self.cycle = [(ROOT_INO, "a", e, "a"), (b, "d", c, "d"),
                      (e, "a", ROOT_INO, "a"), (c, "d", b, "d")]
        self.dirs = [setup.make("mkdir", parent=ROOT_INO, name=f"m{i}")
                     for i in range(self.DIRS)]
        for i in range(self.FILES):
            setup.make("create", parent=self.dirs[0], name=f"f{i}")
        self.listed = [ROOT_INO, a, b, c, d, e, *self.dirs]

    def next(self, rng: random.Random, process: int) -> Planned:
        roll = rng.random()
        if roll < 0.3:
            parent, name, new_parent, new_name = rng.choice(self.cycle)
        elif roll < 0.8:
            name = new_name = f"f{rng.randrange(self.FILES)}"
            parent, new_parent = rng.sample(self.dirs, 2)
        elif roll < 0.9:
            return Planned(READ, "readdir", {"ino": rng.choice(self.listed)})
        else:
            return Planned(READ, "lookup", {"parent": rng.choice(self.dirs),
                                         "name": f"f{rng.randrange(self.FILES)}"})
        return Planned(WRITE, "rename", {"parent": parent, "name": name,
                                      "new_parent": new_parent, "new_name": new_name})

    def finals(self) -> list[Planned]:
        return [Planned(READ, "readdir", {"ino": ino}) for ino in self.listed]


class LinkChurn(Workload):
    name = "links"
    FILES = 4

    def setup(self, setup: Setup) -> None:
        self.dir = setup.make("mkdir", parent=ROOT_INO, name="l")
        self.files = [setup.make("create", parent=self.dir, name=f"x{i}")
                      for i in range(self.FILES)]
        self._names: dict[int, itertools.count] = {}
        self._made: dict[int, list[str]] = {}

    def next(self, rng: random.Random, process: int) -> Planned:
        made = self._made.setdefault(process, [])
        roll = rng.random()
        if roll < 0.4 or (roll < 0.7 and not made):
            i = rng.randrange(self.FILES)
            name = f"x{i}-p{process}-{next(self._names.setdefault(process, itertools.count()))}"
            made.append(name)
            return Planned(WRITE, "link", {"ino": self.files[i], "parent": self.dir, "name": name})
        if roll < 0.7:
            return Planned(WRITE, "unlink", {"parent": self.dir,
                                          "name": made.pop(rng.randrange(len(made)))})
        if roll < 0.95:
            return Planned(READ, "getattr", {"ino": rng.choice(self.files)})
        return Planned(READ, "readdir", {"ino": self.dir})

    def finals(self) -> list[Planned]:
        return [Planned(READ, "readdir", {"ino": self.dir}),
                *(Planned(READ, "getattr", {"ino": ino}) for ino in self.files)]


class Mixed(Workload):
    name = "mixed"

    def __init__(self) -> None:
        self.parts = [Register(), UniqueSet(), RenameStorm(), LinkChurn()]

    def setup(self, setup: Setup) -> None:
        for part in self.parts:
            part.setup(setup)

    def next(self, rng: random.Random, process: int) -> Planned:
        return rng.choice(self.parts).next(rng, process)

    def finals(self) -> list[Planned]:
        return [call for part in self.parts for call in part.finals()]


WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in
                                        (Register, UniqueSet, RenameStorm, LinkChurn, Mixed)}


@dataclass
class Generator:
    """One seeded stream of calls per process: reproducible from (seed, process)."""
    workload: Workload
    seed: int
    _rngs: dict[int, random.Random] = field(default_factory=dict)

    def next(self, process: int) -> Planned:
        rng = self._rngs.setdefault(process, random.Random(self.seed * 1_000_003 + process))
        return self.workload.next(rng, process)
