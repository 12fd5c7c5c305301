"""`metabench scale --bulk`: at each step (1e6, 1e7, 1e8 files by default) build a new
namespace in bulk (metaserver.bulk: /dir.J/file.I, --files-per-dir files per directory),
start a real `metaserver serve` on it (loopback), and measure through gRPC, each phase
bounded by --seconds: unary and batched create / stat (lookup by name) of random
existing files, cold then warm / rename / remove, path lookups (resolve) of random
existing paths, readdir pages of one large directory, with the gRPC echo baseline before
and after (the same run, the same concurrency). Then: server RSS, disk bytes per file,
restart time, fsck (whole, or a stated sample above --fsck-up-to), dump time (bounded).
Writes a table, JSON and a PNG of rates against N (log scale).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil
from rich.console import Console

from metabench import machine
from metabench.execute import execute
from metabench.targets import EchoTarget, Item, NamespaceTarget

# phases: (label, op, batched); stat runs twice, the first time on a cold server
PHASES = (("echo", "echo", False), ("stat cold", "stat", False), ("stat", "stat", False),
          ("resolve", "resolve", False), ("create", "create", False),
          ("rename", "rename", False), ("remove", "unlink", False),
          ("echo batch", "echo", True), ("stat batch", "stat", True),
          ("create batch", "create", True), ("rename batch", "rename", True),
          ("remove batch", "unlink", True), ("echo end", "echo", False))


class _Resolver:
    """Path lookups (one Lookup per component, as a client resolving a path does)."""

    def __init__(self, client) -> None:
        self.client = client

    def run(self, op: str, items: list[Item], batched: bool) -> list:
        results = []
        for item in items:
            try:
                results.append(self.client.resolve(item.handle).ino)
            except OSError as exc:
                results.append(exc)
        return results


class BulkScale:
    def __init__(self, args, console: Console, scratch: str) -> None:
        self.args, self.console, self.scratch = args, console, scratch
        self.rng = random.Random(1)

    def log(self, text: str) -> None:
        self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", highlight=False)

    def measure(self, step: int) -> dict:
        from metaserver import bulk
        path = os.path.join(self.scratch, f"n{step}")
        shutil.rmtree(path, ignore_errors=True)
        shape = bulk.TreeShape(step, min(self.args.files_per_dir, step))
        self.log(f"step {step:,}: bulk build")
        built = bulk.build(path, shape)
        self.log(f"  {built}")
        row = {"files": step, "dirs": shape.dirs, "build_seconds": built.seconds,
               "build_rate": built.files / built.seconds, "sst_files": built.sst_files,
               "disk_bytes": _disk(path)}
        row["bytes_per_file"] = row["disk_bytes"] / step
        url = f"rocksdb://{path}"
        row["fsck"] = self.fsck(url, step, shape)
        server, row["start_seconds"] = _start(url)
        try:
            row["phases"] = self.phases(server, shape, step)
            row["readdir"] = self.readdir(server, shape)
            row["rss_bytes"] = psutil.Process(server.proc.pid).memory_info().rss
        finally:
            server.stop()
        server, row["restart_seconds"] = _start(url)
        row["rss_after_restart"] = psutil.Process(server.proc.pid).memory_info().rss
        server.stop()
        row["dump"] = _dump(url, self.args.dump_seconds)
        row["disk_bytes_after"] = _disk(path)
        p = row["phases"]
        self.log(f"step {step:,}: build {row['build_rate']:,.0f} files/s, "
                 f"{row['bytes_per_file']:.1f} B/file; create {p['create']['rate']:,.0f}/s "
                 f"(echo {p['echo']['rate']:,.0f}), batch {p['create batch']['rate']:,.0f}/s; "
                 f"stat {p['stat']['rate']:,.0f}/s; RSS {row['rss_bytes'] >> 20} MiB; "
                 f"restart {row['restart_seconds']:.1f} s")
        if not self.args.keep:
            shutil.rmtree(path, ignore_errors=True)
        return row

    def fsck(self, url: str, step: int, shape) -> dict:
        """The whole namespace up to --fsck-up-to files; above, a sample of random files
        (each: entry, attr, type, parent, link count) and the counters."""
        if step <= self.args.fsck_up_to:
            metactl = os.path.join(os.path.dirname(sys.executable), "metactl")
            started = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "%M", metactl, "fsck",
                                   "--meta-url", url], capture_output=True, text=True)
            return {"kind": "full", "ok": done.returncode == 0,
                    "seconds": time.perf_counter() - started,
                    "max_rss_bytes": int(done.stderr.strip().splitlines()[-1]) * 1024,
                    "report": done.stdout.strip().splitlines()[0][:200]}
        from engines import open_engine
        from metaserver import schema
        from metaserver.types import FileType
        engine = open_engine(url)
        started = time.perf_counter()
        bad = []
        try:
            with engine.snapshot() as txn:
                for _ in range(self.args.fsck_sample):
                    j = self.rng.randrange(shape.dirs)
                    i = self.rng.randrange(shape.files_in(j))
                    parent, ino = shape.dir_ino(j), shape.file_ino(j, i)
                    entry = txn.get(schema.dentry_key(parent, shape.file_name(i)))
                    data = txn.get(schema.attr_key(ino))
                    attr = schema.decode_attr(ino, data) if data else None
                    if (entry is None or schema.decode_dentry(entry) != (FileType.REGULAR, ino)
                            or attr is None or (attr.type, attr.parent, attr.nlink)
                            != (FileType.REGULAR, parent, 1)):
                        bad.append(ino)
                counters = {name: schema.decode_i64(txn.get(schema.counter_key(name)))
                            for name in ("nextInode", "usedInodes", "usedBytes")}
                beyond = txn.get(schema.attr_key(counters["nextInode"]))
        finally:
            engine.close()
        expected = {"nextInode": shape.file_ino(shape.dirs - 1, shape.files_in(shape.dirs - 1)),
                    "usedInodes": 1 + shape.dirs + step, "usedBytes": 0}
        return {"kind": f"sample of {self.args.fsck_sample} files", "ok": not bad
                and counters == expected and beyond is None, "bad": bad[:10],
                "seconds": time.perf_counter() - started}

    def phases(self, server, shape, step: int) -> dict:
        from metaserver.client import Client
        args = self.args
        client = Client(server.address)
        ns, echo, resolver = NamespaceTarget(client, 0), EchoTarget(client), _Resolver(client)
        existing = []
        for _ in range(args.sample):
            j = self.rng.randrange(shape.dirs)
            i = self.rng.randrange(shape.files_in(j))
            existing.append((shape.dir_ino(j), shape.file_name(i).decode(),
                             f"/{shape.dir_name(j).decode()}/{shape.file_name(i).decode()}"))
        done: dict[str, dict] = {}
        made: dict[bool, list[Item]] = {}
        try:
            for label, op, batched in PHASES:
                if op == "echo":
                    target, items = echo, [Item(0, "")] * args.sample
                elif op == "stat":
                    target, items = ns, [Item(d, n) for d, n, _ in existing]
                elif op == "resolve":
                    target, items = resolver, [Item(0, "", handle=p) for _, _, p in existing]
                elif op == "create":
                    target = ns
                    items = [Item(shape.dir_ino(self.rng.randrange(shape.dirs)),
                                  f"new.{int(batched)}.{k}") for k in range(args.sample)]
                    made[batched] = items
                elif op == "rename":
                    target, items = ns, [Item(it.parent, it.name, it.name + ".mv")
                                         for it in made[batched]]
                else:
                    target, items = ns, [Item(it.parent, it.name + ".mv") for it in made[batched]]
                done[label] = self._phase(target, op, items, batched)
                if op in ("create", "rename"):   # a phase cut short did a prefix of its items
                    made[batched] = made[batched][:done[label]["items"]]
        finally:
            client.close()
        return done

    def _phase(self, target, op: str, items: list[Item], batched: bool) -> dict:
        got = execute(target, op, list(range(len(items))), items.__getitem__,
                      lambda i, r: None, inflight=self.args.inflight,
                      batch=self.args.batch if batched else 0, stonewall=self.args.seconds)
        if got.errors:
            raise RuntimeError(f"scale {op}: {got.errors} errors, first: {got.first_error}")
        return {"rate": got.items / got.seconds, "items": got.items, "seconds": got.seconds,
                "p50_ms": float(np.percentile(got.latencies, 50) * 1e3)}

    def readdir(self, server, shape) -> dict:
        """Pages after random cursors in the first (largest) directory, for --seconds."""
        from metaserver.client import Client
        with Client(server.address) as client:
            pages = entries = 0
            started = time.perf_counter()
            while time.perf_counter() - started < self.args.seconds:
                cursor = shape.file_name(self.rng.randrange(shape.files_in(0)))
                entries += len(client.readdir_page(shape.dir_ino(0), cursor, 1000).entries)
                pages += 1
            seconds = time.perf_counter() - started
        return {"pages_per_s": pages / seconds, "entries_per_s": entries / seconds,
                "dir_entries": shape.files_in(0)}


def _disk(path: str) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())


def _start(url: str):
    """`metaserver serve` on the store, and the seconds until it answers."""
    from metaserver.testing.metaserver_process import ServerProcess
    started = time.perf_counter()
    server = ServerProcess(url).start()
    return server, time.perf_counter() - started


def _dump(url: str, bound: float) -> dict:
    metactl = os.path.join(os.path.dirname(sys.executable), "metactl")
    started = time.perf_counter()
    try:
        done = subprocess.run([metactl, "dump", "--meta-url", url, "-"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=bound)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "note": f"cut after {bound:.0f} s"}
    return {"seconds": time.perf_counter() - started, "ok": done.returncode == 0,
            "note": (done.stderr.strip().splitlines() or [""])[-1][:200]}


def markdown(rows: list[dict]) -> str:
    rates = ("create", "stat cold", "stat", "resolve", "rename", "remove",
             "create batch", "stat batch", "rename batch", "remove batch")
    head = (["files", "build files/s", "B/file", "echo"] + list(rates)
            + ["readdir entries/s", "RSS MiB", "restart s", "fsck", "dump s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        p = r["phases"]
        echo = (p["echo"]["rate"], p["echo end"]["rate"])
        fsck = r["fsck"]
        cells = [f"{r['files']:,}", f"{r['build_rate']:,.0f}", f"{r['bytes_per_file']:.1f}",
                 f"{min(echo):,.0f}–{max(echo):,.0f}"]
        cells += [f"{p[name]['rate']:,.0f}" for name in rates]
        cells += [f"{r['readdir']['entries_per_s']:,.0f}", f"{r['rss_bytes'] / 2**20:.0f}",
                  f"{r['restart_seconds']:.1f}",
                  ("ok" if fsck["ok"] else "FAILED") + f" ({fsck['kind']}, {fsck['seconds']:.0f} s)",
                  "n/a" if r["dump"]["seconds"] is None else f"{r['dump']['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path: str, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = [r["files"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for name in ("echo", "create", "stat", "resolve", "rename", "remove"):
        axes[0].plot(files, [r["phases"][name]["rate"] for r in rows], "o-", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="files", ylabel="operations/s",
                title="unary, through gRPC")
    for name in ("echo batch", "create batch", "stat batch", "rename batch", "remove batch"):
        axes[1].plot(files, [r["phases"][name]["rate"] for r in rows], "o-", label=name)
    axes[1].plot(files, [r["build_rate"] for r in rows], "s--", label="bulk build (files/s)")
    axes[1].set(xscale="log", yscale="log", xlabel="files", ylabel="operations/s",
                title="batched, and the bulk build")
    axes[2].plot(files, [r["rss_bytes"] / 2**20 for r in rows], "o-", label="server RSS MiB")
    axes[2].plot(files, [r["bytes_per_file"] for r in rows], "s-", label="disk B/file")
    axes[2].set(xscale="log", yscale="log", xlabel="files", title="memory and disk")
    for ax in axes:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args, argv: list[str], steps: list[int]) -> int:
    console = Console(width=160)
    scratch = args.scratch or tempfile.mkdtemp(prefix="metabench-bulk-")
    os.makedirs(scratch, exist_ok=True)
    scale, rows = BulkScale(args, console, scratch), []
    try:
        for step in steps:
            rows.append(scale.measure(step))
            if args.json:      # every finished step is kept
                with open(args.json, "w") as f:
                    json.dump({"tool": "metabench scale --bulk",
                               "command": ["metabench", "scale", *argv], "config": vars(args),
                               "machine": machine.facts(), "steps": rows}, f, indent=1)
            if args.plot:
                plot(args.plot, rows)
    finally:
        if not args.scratch and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    console.print(markdown(rows), highlight=False)
    if args.table:
        with open(args.table, "w") as f:
            f.write(markdown(rows))
    return 0
