"""`metabench scale`: grow one directory of one namespace in steps (1e5, 1e6, 1e7
files by default) and at each step measure, over gRPC on a sample, create / stat /
readdir-page / rename / remove rates; on-disk bytes per file; server RSS; the whole
directory listed page by page (time and server memory while listing); the time of
`metactl dump`. Writes a table, a PNG and a projection to 1e9 files.

The namespace is grown in the server process itself (Runner.call_atomic, 256 creates
per transaction: what an atomic Batch does, without the RPC), so the long fill does
not measure the network; the sampled rates all go through the API.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from metabench import machine
from metabench.config import ConfigError, Parser, non_negative, main_error
from metabench.execute import execute
from metabench.scale_server import ScaleServer, file_name
from metabench.stats import PERCENTILES
from metabench.targets import Item, NamespaceTarget

DEFAULT_STEPS = (100_000, 1_000_000, 10_000_000)
PROJECT_FILES = 1_000_000_000
PROJECT_LIST = 10_000_000


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="metabench scale", description=" ".join(__doc__.split("\n\n")[0].split()))
    count = non_negative(lambda text: int(float(text)))
    p.add_argument("--to", type=count, default=DEFAULT_STEPS[-1],
                   help="files at the last step (default: %(default).0e)")
    p.add_argument("--steps", default="", help="comma-separated file counts "
                   "(default: 1e5, 1e6, 1e7, then x10, up to --to)")
    p.add_argument("--meta-url", default="", metavar="URL",
                   help="engine to grow (default: durable RocksDB in a temporary directory, "
                        "removed at the end)")
    p.add_argument("--sample", type=count, default=2000,
                   help="items per sampled phase (default: %(default)s)")
    p.add_argument("--batch", type=count, default=100,
                   help="operations per Batch RPC (0: unary; default: %(default)s)")
    p.add_argument("--inflight", type=count, default=2,
                   help="concurrent requests (default: %(default)s)")
    p.add_argument("--page", type=count, default=1000,
                   help="readdir page size (default: %(default)s)")
    p.add_argument("--list-seconds", type=non_negative(float), default=900,
                   help="seconds bounding the listing of the whole directory at each step "
                   "(default: %(default)s)")
    bulk = p.add_argument_group("--bulk: build each step anew in bulk, then measure a "
                                "real server on it (metabench.scale_bulk)")
    bulk.add_argument("--bulk", action="store_true",
                      help="build each step's namespace in bulk (SST files) instead of "
                      "growing it through the runner")
    bulk.add_argument("--files-per-dir", type=count, default=1_000_000,
                      help="files per directory of the built tree (default: %(default)s)")
    bulk.add_argument("--seconds", type=non_negative(float), default=10,
                      help="seconds bounding each measured phase (default: %(default)s)")
    bulk.add_argument("--fsck-up-to", type=count, default=10_000_000,
                      help="check whole namespaces up to this many files, a sample above "
                      "(default: %(default)s)")
    bulk.add_argument("--fsck-sample", type=count, default=100_000,
                      help="files checked above --fsck-up-to (default: %(default)s)")
    bulk.add_argument("--dump-seconds", type=non_negative(float), default=600,
                      help="seconds bounding the timing of metactl dump (default: %(default)s)")
    bulk.add_argument("--scratch", default="", metavar="DIR",
                      help="where the stores are built (default: a temporary directory)")
    bulk.add_argument("--keep", action="store_true", help="keep each step's store")
    p.add_argument("--json", default="", metavar="FILE", help="write the results here as JSON")
    p.add_argument("--plot", default="", metavar="FILE.png", help="draw the curves here")
    p.add_argument("--table", default="", metavar="FILE.md", help="also write the table here")
    return p


def steps_of(args) -> list[int]:
    if args.steps:
        try:
            steps = sorted({int(float(s)) for s in args.steps.split(",") if s.strip()})
        except ValueError:
            raise ConfigError(f"--steps must be numbers, not {args.steps!r}") from None
    else:
        steps, n = [s for s in DEFAULT_STEPS if s < args.to], DEFAULT_STEPS[-1] * 10
        while n < args.to:
            steps.append(n)
            n *= 10
        steps.append(args.to)
    if not steps or steps[0] < 1:
        raise ConfigError("steps must be positive file counts")
    return steps


class Scale:
    def __init__(self, args, server: ScaleServer, console: Console) -> None:
        self.args, self.server, self.console = args, server, console
        self.client = None
        self._connect()
        self.dir = self.client.mkdir(self.target.root, "scale").ino
        self.files = 0
        self.rng = random.Random(1)

    def _connect(self) -> None:
        """(Re)connect to the server, which moves to a new address after a dump."""
        from metaserver.client import Client
        if self.client is not None:
            self.client.close()
        self.client = Client(self.server.address)
        self.target = NamespaceTarget(self.client, 0)

    def log(self, text: str) -> None:
        self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", highlight=False)

    def grow(self, to: int) -> dict:
        first = self.files
        seconds = self.server.fill(self.dir, first, to, lambda done: self.log(
            f"  filled {done:,} of {to:,}"))
        self.files = to
        return {"fill_seconds": seconds, "fill_rate": (to - first) / seconds if seconds else 0.0}

    def _phase(self, op: str, items: list[Item]) -> dict:
        got = execute(self.target, op, list(range(len(items))), items.__getitem__,
                      lambda i, r: None, inflight=self.args.inflight, batch=self.args.batch)
        if got.errors:
            raise RuntimeError(f"scale {op}: {got.errors} errors, first: {got.first_error}")
        latency = np.percentile(got.latencies, list(PERCENTILES.values())) * 1e3
        return {"rate": got.items / got.seconds,
                "latency_ms": dict(zip(PERCENTILES, map(float, latency)))}

    def sample(self, step: int) -> dict:
        n = self.args.sample
        names = [f"sample.{step}.{i}" for i in range(n)]
        existing = [file_name(self.rng.randrange(self.files)) for _ in range(n)]
        return {
            "create": self._phase("create", [Item(self.dir, name) for name in names]),
            "stat": self._phase("stat", [Item(self.dir, name) for name in existing]),
            "rename": self._phase("rename", [Item(self.dir, name, name + ".mv") for name in names]),
            "remove": self._phase("unlink", [Item(self.dir, name + ".mv") for name in names]),
            "readdir_page": self._pages(max(20, n // 100)),
        }

    def _pages(self, pages: int) -> dict:
        """Pages read after random cursors: what a listing pays per page at this size."""
        start = time.perf_counter()
        entries = sum(len(self.client.readdir_page(
            self.dir, file_name(self.rng.randrange(self.files)), self.args.page).entries)
            for _ in range(pages))
        seconds = time.perf_counter() - start
        return {"rate": pages / seconds, "entries_per_s": entries / seconds}

    def list_all(self) -> dict:
        """The whole directory, page by page, sampling the server's RSS as it goes."""
        proc = psutil.Process(self.server.pid)
        before = proc.memory_info().rss
        peak, entries, cursor, pages = before, 0, b"", 0
        start = time.perf_counter()
        while time.perf_counter() - start < self.args.list_seconds:
            page = self.client.readdir_page(self.dir, cursor, self.args.page)
            entries += len(page.entries)
            pages += 1
            if pages % 50 == 0:
                peak = max(peak, proc.memory_info().rss)
            cursor = page.cursor
            if not cursor:
                break
        seconds = time.perf_counter() - start
        return {"entries": entries, "complete": not cursor, "seconds": seconds,
                "entries_per_s": entries / seconds, "rss_before": before,
                "rss_peak": max(peak, proc.memory_info().rss)}

    def measure(self, step: int) -> dict:
        self.log(f"step {step:,}: growing")
        row = {"files": step, **self.grow(step)}
        self.log(f"step {step:,}: sampling ({self.args.sample} items per phase)")
        row.update(self.sample(step))
        row["disk_bytes"] = self.server.disk_usage()
        row["bytes_per_file"] = row["disk_bytes"] / step if row["disk_bytes"] else None
        row["rss_bytes"] = psutil.Process(self.server.pid).memory_info().rss
        self.log(f"step {step:,}: listing the directory")
        row["list"] = list_ = self.list_all()
        row["dump_seconds"], row["dump_note"] = self.server.dump()
        self._connect()
        self.log(f"step {step:,}: create {row['create']['rate']:,.0f}/s, stat "
                 f"{row['stat']['rate']:,.0f}/s, {row['bytes_per_file'] or 0:.0f} B/file, "
                 f"RSS {row['rss_bytes'] >> 20} MiB, listed {list_['entries']:,} in "
                 f"{list_['seconds']:.0f} s")
        return row


def projection(rows: list[dict]) -> dict:
    """Extrapolate to 1e9 files. Models: disk and RSS linear in files (least squares
    over the steps); time to create = the measured fill time up to the largest step,
    then the rest at the largest step's rate (flat) or at a rate falling linearly in
    log10(files) as it did between the steps (trend, floored at 10% of it); listing a
    10M-entry directory at the entries/s of the largest step's full listing."""
    files = np.array([r["files"] for r in rows], float)
    last = rows[-1]

    def linear(values: list) -> float | None:
        if any(v is None for v in values):
            return None
        if len(values) == 1:
            return values[0] / files[0] * PROJECT_FILES
        slope, intercept = np.polyfit(files, np.array(values, float), 1)
        return float(slope * PROJECT_FILES + intercept)

    def create_seconds(key: str, trend: bool) -> float:
        rates = [r["fill_rate"] if key == "fill" else r[key]["rate"] for r in rows]
        before = [0] + [r["files"] for r in rows[:-1]]
        done = sum(r["fill_seconds"] for r in rows) if key == "fill" else \
            sum((r["files"] - b) / rate for r, b, rate in zip(rows, before, rates))
        grid = np.logspace(np.log10(last["files"]), np.log10(PROJECT_FILES), 500)
        rate = np.full_like(grid, rates[-1])
        if trend and len(rows) > 1:
            slope = np.polyfit(np.log10(files), rates, 1)[0]
            rate = np.maximum(rates[-1] + min(slope, 0) * (np.log10(grid) - np.log10(files[-1])),
                              0.1 * rates[-1])
        return float(done + np.trapezoid(1 / rate, grid))

    return {
        "files": PROJECT_FILES,
        "disk_bytes": linear([r["disk_bytes"] for r in rows]),
        "rss_bytes": linear([r["rss_bytes"] for r in rows]),
        "create_seconds": {f"{key}_{model}": create_seconds(key, model == "trend")
                           for key in ("create", "fill") for model in ("flat", "trend")},
        "list_10m_seconds": PROJECT_LIST / last["list"]["entries_per_s"],
        "model": " ".join(projection.__doc__.split("Models: ")[1].split()),
    }


def table(rows: list[dict]) -> Table:
    t = Table(title="scale curve (rates per second; sample through the API)",
              title_justify="left", box=None)
    for name in ("files", "bulk create", "create", "stat", "readdir page", "rename", "remove",
                 "B/file", "RSS MiB", "list s", "list RSS +MiB", "dump s"):
        t.add_column(name, justify="right")
    for r in rows:
        lst = r["list"]
        t.add_row(f"{r['files']:,}", f"{r['fill_rate']:,.0f}",
                  *(f"{r[p]['rate']:,.0f}" for p in ("create", "stat", "readdir_page",
                                                     "rename", "remove")),
                  f"{r['bytes_per_file']:.0f}" if r["bytes_per_file"] else "n/a",
                  f"{r['rss_bytes'] / 2**20:.0f}",
                  f"{lst['seconds']:.1f}" + ("" if lst["complete"] else " (cut)"),
                  f"{(lst['rss_peak'] - lst['rss_before']) / 2**20:+.0f}",
                  f"{r['dump_seconds']:.1f}" if r["dump_seconds"] is not None else "n/a")
    return t


def markdown(rows: list[dict], proj: dict) -> str:
    t = table(rows)
    lines = ["| " + " | ".join(c.header for c in t.columns) + " |",
             "|" + "---:|" * len(t.columns)]
    cells = [list(c.cells) for c in t.columns]
    lines += ["| " + " | ".join(str(col[i]) for col in cells) + " |" for i in range(len(rows))]
    notes = [f"{r['files']:,} files: {r['dump_note']}" for r in rows if r["dump_note"]]
    lines += ["", f"Projection to {proj['files']:.0e} files ({proj['model']}):",
              f"disk {_gib(proj['disk_bytes'])}, server RSS {_gib(proj['rss_bytes'])}, "
              f"time to create: {_hours(proj['create_seconds'], 'create')} through the API "
              f"(batched, sampled rate), {_hours(proj['create_seconds'], 'fill')} in bulk "
              f"(in-process atomic batches); "
              f"list a 10M-entry directory {proj['list_10m_seconds']:,.0f} s.",
              *(f"Dump at {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _hours(seconds: dict, key: str) -> str:
    return (f"{seconds[key + '_flat'] / 3600:,.1f} h (flat) to "
            f"{seconds[key + '_trend'] / 3600:,.1f} h (trend)")


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:,.1f} GiB"


def plot(path: str, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = [r["files"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    for phase in ("create", "stat", "rename", "remove"):
        axes[0].plot(files, [r[phase]["rate"] for r in rows], "o-", label=phase)
    axes[0].plot(files, [r["fill_rate"] for r in rows], "s--", label="bulk create (in process)")
    axes[0].set(xscale="log", yscale="log", xlabel="files in the directory",
                ylabel="operations/s", title="rates")
    axes[0].legend(fontsize="small")
    axes[1].plot(files, [r["bytes_per_file"] or 0 for r in rows], "o-")
    axes[1].set(xscale="log", xlabel="files", ylabel="bytes per file on disk", title="disk")
    axes[2].plot(files, [r["rss_bytes"] / 2**20 for r in rows], "o-", label="after step")
    axes[2].plot(files, [r["list"]["rss_peak"] / 2**20 for r in rows], "s--",
                 label="peak while listing")
    axes[2].set(xscale="log", xlabel="files", ylabel="server RSS (MiB)", title="memory")
    axes[2].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args, argv: list[str]) -> int:
    steps = steps_of(args)
    if args.bulk:
        from metabench import scale_bulk
        return scale_bulk.run(args, argv, steps)
    console = Console(width=160)
    scratch = None
    url = args.meta_url
    if not url:
        scratch = tempfile.mkdtemp(prefix="metabench-scale-")
        url = f"rocksdb://{scratch}/db"
        _format(url)
    try:
        server = ScaleServer(url)
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from None
    rows: list[dict] = []
    try:
        scale = Scale(args, server, console)
        for step in steps:
            rows.append(scale.measure(step))
            _write(args, argv, url, rows)        # every finished step is kept
        scale.client.close()
    finally:
        server.stop()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    console.print(table(rows))
    console.print(markdown(rows, projection(rows)).split("\n\n", 1)[1], highlight=False)
    return 0


def _format(url: str) -> None:
    """`metaserver format` of the new store (a server never formats one itself)."""
    from engines import open_engine
    from metaserver.runner import format_namespace
    engine = open_engine(url, create=True)
    try:
        format_namespace(engine)
    finally:
        engine.close()


def _write(args, argv: list[str], url: str, rows: list[dict]) -> None:
    proj = projection(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "metabench scale", "command": ["metabench", "scale", *argv],
                       "meta_url": url, "config": vars(args), "machine": machine.facts(),
                       "steps": rows, "projection": proj}, f, indent=1)
    if args.table:
        with open(args.table, "w") as f:
            f.write(markdown(rows, proj))
    if args.plot:
        plot(args.plot, rows)


def main(argv: list[str]) -> int:
    try:
        return run(parser().parse_args(argv), argv)
    except ConfigError as exc:
        return main_error(str(exc))
    except (RuntimeError, OSError) as exc:
        print(f"metabench scale: {exc}", file=sys.stderr)
        return 1
