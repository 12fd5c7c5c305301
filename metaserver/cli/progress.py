"""Progress of a command's long work (rm -r, dump, load, fsck, summary), on stderr: a
live bar on a terminal (a spinner and a count while the total is unknown); when stderr
is not a terminal, nothing while it runs and one line at the end, so logs stay short.

    with progress("removed", unit="entries") as done:
        for ...:
            done.advance()

A command that prints its own summary line passes `final_line=False`: then the bar
goes away at the end and nothing is added when piped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                           TextColumn, TimeElapsedColumn)


class Tracker:
    """How far the work is; `advance` is cheap enough to call per item."""

    def __init__(self, bar: Progress | None = None, task: int | None = None) -> None:
        self.count = 0
        self._bar, self._task = bar, task

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.count)


class Metered:
    """A binary file whose reads and writes advance `tracker` by their bytes (for a
    dump written or read by code that knows nothing of progress)."""

    def __init__(self, file: BinaryIO, tracker: Tracker) -> None:
        self._file, self._tracker = file, tracker

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._tracker.advance(len(data))
        return data

    def write(self, data: bytes) -> int:
        self._tracker.advance(len(data))
        return self._file.write(data)

    def __getattr__(self, name: str):       # seek, tell, seekable, flush: as they are
        return getattr(self._file, name)


@contextmanager
def progress(description: str, *, unit: str = "items", total: int | None = None,
             final_line: bool = True, prog: str = "metactl") -> Iterator[Tracker]:
    """Track work described as `description` (e.g. "rm: removed"), counted in `unit`
    (none: a spinner and the time only), out of `total` if known (then a bar)."""
    started = time.monotonic()
    console = Console(stderr=True)
    if not console.is_terminal:
        tracker = Tracker()
        outcome = "interrupted after "
        try:
            yield tracker
            outcome = ""
        finally:
            if final_line:
                print(f"{prog}: {description} {tracker.count:,}"
                      f"{'' if total is None else f' of {total:,}'} {unit}, "
                      f"{outcome}{time.monotonic() - started:.1f} s",
                      file=sys.stderr, flush=True)
        return
    columns = [SpinnerColumn(), TextColumn(description, markup=False)]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    elif unit:
        columns.append(TextColumn("{task.completed:,.0f}"))
    if unit:
        columns.append(TextColumn(unit, markup=False))
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console, transient=not final_line) as bar:
        yield Tracker(bar, bar.add_task(description, total=total))
