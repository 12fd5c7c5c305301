"""The `metabench` command: parse, check the target answers, run the workload on the
target and on each baseline, report. Any failure is one line and a non-zero exit."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from urllib.parse import urlsplit

from metabench.config import Baseline, Config, ConfigError, from_args, main_error
from metabench.targets import TargetSpec

EXIT_FAILED = 1
EXTRA_HINT = "install the bench extra: .venv/bin/pip install -e '.[bench]'"


def _probe(c: Config) -> None:
    """Fail early, in one line, on a target that cannot work."""
    if c.server:
        from metaserver.client import Client, RetryPolicy
        with Client(c.server, timeout=min(c.timeout, 10),
                    retry=RetryPolicy(attempts=1), token=c.token or None) as client:
            try:
                client.echo(b"")
            except PermissionError as exc:      # reached, but the token is refused
                raise ConfigError(f"the metaserver at {c.server} refused: "
                                  f"{exc.strerror}") from None
            except OSError as exc:
                raise ConfigError(f"cannot reach a metaserver at {c.server}: "
                                  f"{exc.strerror}") from None
    else:
        from engines import open_engine
        from engines.contract import EngineError
        try:
            open_engine(c.meta_url).close()
        except EngineError as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
    for b in c.baselines:
        if b.kind == "localfs" and not os.path.isdir(b.path):
            raise ConfigError(f"localfs baseline: {b.path} is not a directory")


def target_specs(c: Config) -> list[TargetSpec]:
    kind = "grpc" if c.server else "inproc"
    return [TargetSpec(kind, c.target, c.timeout, c.write_bytes, c.token)] * c.processes


def raw_url(c: Config, scratch: str) -> str:
    """The raw baseline's engine: --raw-url, else a fresh one of the target's kind
    (the server's default, durable RocksDB, for --server)."""
    if c.raw_url:
        return c.raw_url
    scheme = urlsplit(c.meta_url).scheme if c.meta_url else "rocksdb"
    return "memory://" if scheme == "memory" else f"{scheme}://{scratch}/raw"


def baseline_specs(c: Config, b: Baseline, scratch: str) -> list[TargetSpec]:
    if b.kind == "echo":
        return [TargetSpec("echo", c.server, c.timeout, token=c.token)] * c.processes
    if b.kind == "localfs":
        return [TargetSpec("localfs", b.path, c.timeout, c.write_bytes)] * c.processes
    url = raw_url(c, scratch)
    # An embedded engine opens in one process only: one engine per process.
    return [TargetSpec("raw", url if url == "memory://" else f"{url}/p{rank}", c.timeout,
                       c.write_bytes) for rank in range(c.processes)]


def run(c: Config, argv: list[str]) -> int:
    from metabench import driver, machine, report, stats
    _probe(c)
    tty = sys.stderr.isatty()
    facts = machine.facts()
    baselines, paired = {}, {}
    scratch = tempfile.mkdtemp(prefix="metabench-")
    try:
        mixed = [b for b in c.baselines if c.interleaved(b)]
        per_rank = [[(b.label, baseline_specs(c, b, scratch)[rank]) for b in mixed]
                    for rank in range(c.processes)]
        result = driver.run(c, target_specs(c), "metaserver", tty, per_rank)
        target = stats.summarize(result)
        for b in c.baselines:
            if c.interleaved(b):
                baselines[b.label] = stats.summarize(result, b.label)
                paired[b.label] = stats.paired_by_phase(result, b.label)
            else:
                baselines[b.label] = stats.summarize(
                    driver.run(c, baseline_specs(c, b, scratch), b.label, tty))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    facts["load_average_end"] = list(os.getloadavg())
    report.print_summary(c, target, baselines, paired)
    if c.json:
        report.write_json(c.json, report.document(c, argv, facts, target, baselines, paired,
                                                  result))
    if c.plot:
        from metabench.plot import plot
        plot(c.plot, report.describe(c), target, baselines)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        from metabench import driver, scale   # numpy, psutil, rich: the bench extra
    except ImportError as exc:
        return main_error(f"{exc.name} is missing: {EXTRA_HINT}")
    try:
        if argv[:1] == ["scale"]:
            return scale.main(argv[1:])
        return run(from_args(argv), argv)
    except ConfigError as exc:
        return main_error(str(exc))
    except driver.RunFailed as exc:
        print(f"metabench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("metabench: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:   # output files, local directories
        print(f"metabench: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
