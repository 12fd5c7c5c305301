"""Options: the mdtest-style command line parsed into one validated, frozen Config."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

# Phases in the order they run within an iteration, with their mdtest flags.
PHASE_FLAGS = {"create": "C", "stat": "T", "read": "E", "rename": "U", "remove": "r"}
DEFAULT_PHASES = ("create", "stat", "read", "remove")
BATCH_MAX = 10000           # the API's limit of operations per Batch RPC
DEFAULT_SERVER = "127.0.0.1:7420"   # where `metaserver serve` and metactl look by default
IO500_HARD_BYTES = 3901


class ConfigError(ValueError):
    """The options cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class Baseline:
    kind: str               # "echo", "raw" or "localfs"
    path: str = ""          # localfs: the directory to work in

    @property
    def label(self) -> str:
        return f"localfs:{self.path}" if self.path else self.kind


@dataclass(frozen=True)
class Config:
    items: int = 0                  # -n: items per process (0: derived from -I)
    items_per_dir: int = 0          # -I
    depth: int = 0                  # -z
    branch: int = 1                 # -b
    unique_dir: bool = False        # -u
    leaf_only: bool = False         # -L
    files: bool = True              # not -D
    dirs: bool = True               # not -F
    phases: tuple[str, ...] = DEFAULT_PHASES
    write_bytes: int = 0            # -w
    iterations: int = 1             # -i
    stonewall: float = 0.0          # -W seconds; 0: off
    processes: int = 1              # -P
    inflight: int = 1               # --inflight
    batch: int = 0                  # --batch K; 0: unary calls
    server: str = ""                # --server HOST:PORT
    meta_url: str = ""              # --meta-url URL (in process)
    baselines: tuple[Baseline, ...] = ()
    raw_url: str = ""               # engine for the raw baseline; empty: like the target
    window: float = 1.0             # --window: seconds per interleaved window
    separate_baselines: bool = False   # --separate-baselines: echo and raw after the target
    json: str = ""
    plot: str = ""
    preset: str = ""                # "io500-easy", "io500-hard" or ""
    timeout: float = 30.0           # per call, seconds
    token: str = ""                 # --token; empty: $METASERVER_TOKEN (the client's default)

    @property
    def target(self) -> str:
        return self.server or self.meta_url

    def interleaved(self, b: Baseline) -> bool:
        """Echo and raw alternate with the target in short windows; localfs runs after."""
        return b.kind in ("echo", "raw") and not self.separate_baselines

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["baselines"] = [b.label for b in self.baselines]
        return out


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ConfigError (one line), not usage text."""

    def error(self, message: str):          # one line, not usage + traceback-like noise
        raise ConfigError(message)


def non_negative(kind):
    """An argparse type: `kind(text)`, refusing negatives and saying so in one line."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="metabench", add_help=True,
                description="mdtest-style metadata benchmark for metaserver. Phases given "
                            "(-C -T -E -U -r) are timed; none given means -C -T -E -r. Items a "
                            "timed phase needs are created, and whatever is left removed, "
                            "untimed. `metabench scale --help` for the scale curve.")
    n = non_negative(int)
    p.add_argument("-n", dest="items", type=n, default=0, help="items per process (give -n or -I)")
    p.add_argument("-I", dest="items_per_dir", type=n, default=0,
                   help="items per directory (give -n or -I)")
    p.add_argument("-z", dest="depth", type=n, default=0, help="tree depth (default: %(default)s)")
    p.add_argument("-b", dest="branch", type=n, default=1,
                   help="branching factor (default: %(default)s)")
    p.add_argument("-u", dest="unique_dir", action="store_true", help="unique tree per process")
    p.add_argument("-L", dest="leaf_only", action="store_true", help="items at leaves only")
    p.add_argument("-F", dest="files_only", action="store_true", help="files only")
    p.add_argument("-D", dest="dirs_only", action="store_true", help="directories only")
    for name, flag in PHASE_FLAGS.items():
        p.add_argument(f"-{flag}", dest=name, action="store_true", help=f"{name} phase")
    p.add_argument("-w", dest="write_bytes", type=n, default=0,
                   help="bytes per file, recorded as one slice in the chunk map "
                        "(default: %(default)s)")
    p.add_argument("-i", dest="iterations", type=n, default=1,
                   help="iterations (default: %(default)s)")
    p.add_argument("-W", dest="stonewall", type=non_negative(float), default=0.0,
                   help="stonewall: stop issuing a phase's work after this many seconds "
                        "(default: %(default)s, none)")
    p.add_argument("--io500-easy", action="store_true",
                   help="unique directory per process, files at leaves (-u -L -F)")
    p.add_argument("--io500-hard", action="store_true",
                   help=f"one shared directory, {IO500_HARD_BYTES}-byte files (-F -w {IO500_HARD_BYTES})")
    p.add_argument("-P", dest="processes", type=n, default=1,
                   help="client processes (default: %(default)s)")
    p.add_argument("--inflight", type=n, default=1,
                   help="concurrent requests per process (default: %(default)s)")
    p.add_argument("--batch", type=n, default=0,
                   help="operations per Batch RPC (0: unary; default: %(default)s)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--server", default="", metavar="HOST:PORT",
                        help=f"the metaserver (default: $METASERVER_ADDRESS or {DEFAULT_SERVER})")
    target.add_argument("--meta-url", default="", metavar="URL",
                        help="run the namespace in process, no RPC (memory://, rocksdb:///PATH)")
    p.add_argument("--baseline", default="", metavar="LIST",
                   help="comma-separated: echo, raw, localfs:PATH")
    p.add_argument("--raw-url", default="", metavar="URL",
                   help="engine for the raw baseline (default: a temporary one of the target's kind)")
    p.add_argument("--window", type=non_negative(float), default=1.0, metavar="S",
                   help="echo and raw baselines run interleaved with each timed phase, in "
                        "alternating windows of S seconds (default 1)")
    p.add_argument("--separate-baselines", action="store_true",
                   help="run echo and raw after the target, as whole runs of their own")
    p.add_argument("--json", default="", metavar="FILE", help="write the results here as JSON")
    p.add_argument("--plot", default="", metavar="FILE.png", help="draw the rates here")
    p.add_argument("--timeout", type=non_negative(float), default=30.0, metavar="SECONDS",
                   help="seconds per call (default: %(default)s)")
    p.add_argument("--version", action="version", version=f"metabench {_version()}")
    p.add_argument("--token", default="", metavar="TOKEN",
                   help="bearer token for --server (default: $METASERVER_TOKEN)")
    p.add_argument("--token-file", default="", metavar="FILE",
                   help="file holding the token (default: $METASERVER_TOKEN_FILE)")
    return p


def parse_baselines(text: str) -> tuple[Baseline, ...]:
    out = []
    for part in filter(None, (s.strip() for s in text.split(","))):
        kind, _, path = part.partition(":")
        if kind in ("echo", "raw") and not path:
            out.append(Baseline(kind))
        elif kind == "localfs" and path:
            out.append(Baseline(kind, path))
        else:
            raise ConfigError(f"unknown baseline {part!r} (expected echo, raw or localfs:PATH)")
    return tuple(out)


def _version() -> str:
    from metaserver import __version__
    return __version__


def _token(a: argparse.Namespace) -> str:
    """--token, else the first line of --token-file; empty: the client's own default."""
    from metaserver.channel import Credentials, CredentialsError
    try:
        return Credentials.resolve(a.token or None, a.token_file or None).token \
            if a.token or a.token_file else ""
    except CredentialsError as exc:
        raise ConfigError(str(exc)) from None


def from_args(argv: list[str]) -> Config:
    a = parser().parse_args(argv)
    if a.io500_easy and a.io500_hard:
        raise ConfigError("--io500-easy and --io500-hard exclude each other")
    preset = "io500-easy" if a.io500_easy else "io500-hard" if a.io500_hard else ""
    if a.io500_easy:
        a.unique_dir = a.leaf_only = a.files_only = True
    if a.io500_hard:
        a.files_only = True
        a.unique_dir = False
        a.depth = 0
        a.write_bytes = a.write_bytes or IO500_HARD_BYTES
    if a.files_only and a.dirs_only:
        raise ConfigError("-F (files only) and -D (directories only) exclude each other")
    phases = tuple(name for name in PHASE_FLAGS if getattr(a, name)) or DEFAULT_PHASES
    if a.dirs_only:
        phases = tuple(ph for ph in phases if ph != "read")
    config = Config(
        items=a.items, items_per_dir=a.items_per_dir, depth=a.depth, branch=a.branch,
        unique_dir=a.unique_dir, leaf_only=a.leaf_only, files=not a.dirs_only,
        dirs=not a.files_only, phases=phases, write_bytes=a.write_bytes,
        iterations=a.iterations, stonewall=a.stonewall, processes=a.processes,
        inflight=a.inflight, batch=a.batch, meta_url=a.meta_url,
        server=a.server or ("" if a.meta_url else
                            os.environ.get("METASERVER_ADDRESS", DEFAULT_SERVER)),
        baselines=parse_baselines(a.baseline), raw_url=a.raw_url, window=a.window,
        separate_baselines=a.separate_baselines, json=a.json, plot=a.plot,
        preset=preset, timeout=a.timeout, token=_token(a))
    validate(config)
    return config


def validate(c: Config) -> None:
    if c.server:
        host, _, port = c.server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--server must be HOST:PORT, not {c.server!r}")
    if c.items == 0 and c.items_per_dir == 0:
        raise ConfigError("give -n (items per process) or -I (items per directory)")
    for name in ("iterations", "processes", "inflight"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if c.branch < 1:
        raise ConfigError("-b (branching factor) must be at least 1")
    if c.window <= 0:
        raise ConfigError("--window must be more than 0 seconds")
    if c.batch > BATCH_MAX:
        raise ConfigError(f"--batch holds at most {BATCH_MAX} operations")
    if c.meta_url and c.processes > 1:
        raise ConfigError("--meta-url runs the namespace inside one process: use -P 1 "
                          "and --inflight for concurrency, or --server for several processes")
    if any(b.kind == "echo" for b in c.baselines) and not c.server:
        raise ConfigError("the echo baseline needs a server (--server HOST:PORT)")
    if c.write_bytes and not c.files:
        raise ConfigError("-w writes files: it cannot go with -D")


def main_error(message: str) -> int:
    print(f"metabench: error: {message}", file=sys.stderr)
    return 2
