"""Tree shape: which directories a process works in and where each item goes, by
mdtest's formulas.

mdtest builds a tree of depth z and branching factor b: 1 + b + ... + b^z directories
(z+1 when b is 1), numbered breadth-first so node k's children are k*b+1 .. k*b+b.
Items go into every directory, or only into the b^z leaves with -L. Given -n alone,
items per directory = n / (directories holding items), and n is rounded down to a
multiple of it; given -I alone, n = I * (directories holding items); given both, the
tree is repeated (mdtest's "directory loops") until it holds n items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metabench.config import Config, ConfigError


def dirs_in_tree(depth: int, branch: int) -> int:
    if depth <= 0 or branch < 1:
        return 1
    if branch == 1:
        return depth + 1
    return (branch ** (depth + 1) - 1) // (branch - 1)


@dataclass(frozen=True)
class Shape:
    """The tree of one process (or the one shared tree) and its items."""
    depth: int
    branch: int
    items: int              # per process
    items_per_dir: int      # per process in each directory holding items
    leaf_only: bool
    loops: int = 1          # copies of the tree

    @property
    def dirs(self) -> int:
        """Directories in one copy of the tree."""
        return dirs_in_tree(self.depth, self.branch)

    @property
    def first_item_dir(self) -> int:
        """Breadth-first index of the first directory that holds items."""
        return self.dirs - self.branch ** self.depth if self.leaf_only else 0

    @property
    def item_dirs(self) -> int:
        """Directories holding items in one copy of the tree."""
        return self.dirs - self.first_item_dir

    @property
    def total_dirs(self) -> int:
        return self.dirs * self.loops

    def parent(self, node: int) -> int | None:
        """The parent of tree node `node` (numbered across copies); None for a copy's top."""
        loop, k = divmod(node, self.dirs)
        return None if k == 0 else loop * self.dirs + (k - 1) // self.branch

    def depth_of(self, node: int) -> int:
        k, level = node % self.dirs, 0
        while k:
            k, level = (k - 1) // self.branch, level + 1
        return level

    def item_dir(self, index: int) -> int:
        """The tree node item `index` goes into."""
        slot = index // self.items_per_dir
        loop, k = divmod(slot, self.item_dirs)
        return loop * self.dirs + self.first_item_dir + k


def shape(depth: int, branch: int, items: int, items_per_dir: int, leaf_only: bool) -> Shape:
    dirs = dirs_in_tree(depth, branch)
    holding = branch ** depth if leaf_only else dirs
    if depth <= 0:
        holding = 1
    loops = 1
    if items_per_dir > 0 and items == 0:
        items = items_per_dir * holding
    elif items_per_dir > 0:
        loops = math.ceil(items / (items_per_dir * holding))
    else:
        items_per_dir = items // holding
        items = items_per_dir * holding
    if items == 0:
        raise ConfigError(f"-n {items} gives no items for {holding} directories holding items")
    return Shape(depth, branch, items, items_per_dir, leaf_only and depth > 0, loops)


def from_config(c: Config) -> Shape:
    return shape(c.depth, c.branch, c.items, c.items_per_dir, c.leaf_only)


def item_name(kind: str, rank: int, index: int) -> str:
    return f"{kind}.mdtest.{rank}.{index}"


def renamed(name: str) -> str:
    return name + ".mv"


def tree_top_name(unique: bool, rank: int, loop: int) -> str:
    return f"mdtest_tree.{rank}.{loop}" if unique else f"mdtest_tree.{loop}"


def node_name(s: Shape, node: int, unique: bool, rank: int) -> str:
    loop, k = divmod(node, s.dirs)
    return tree_top_name(unique, rank, loop) if k == 0 else f"mdtest_tree.{k}"
