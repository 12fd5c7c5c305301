"""deploy/two-dc.sh as an operator runs it: it starts a primary, a follower and the
link proxy, says where they are, and on Ctrl-C or SIGTERM stops them all within
seconds, without a traceback, leaving no process and no temp dir behind."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import selectors
import signal
import subprocess
import time

import psutil
import pytest

from metaserver.testing.databases import server_binary
from metaserver.testing.metaserver_process import status, wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "two-dc.sh"
START_TIMEOUT_S = 90
STOP_LIMIT_S = 5


def _have_mariadbd() -> bool:
    try:
        return bool(server_binary("mariadbd"))
    except FileNotFoundError:
        return False


def _read_until_ready(proc: subprocess.Popen) -> str:
    """Its standard output up to the line saying how to stop it (bounded in time).
    Raw reads: a buffered readline would hide lines from select."""
    out = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"Ctrl-C stops everything." not in out:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"not ready (exit {proc.poll()}): {out!r}"
            if selector.select(min(left, 1)):
                out += os.read(proc.stdout.fileno(), 65536)
    return out.decode()


def _stop_leftovers(proc: subprocess.Popen) -> None:
    """After a failure: SIGTERM the script (it stops its children), then SIGKILL
    whatever of what it started is still there, by PID."""
    if proc.poll() is None:
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for child in started:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.mark.parametrize("engine", ["rocksdb", "mariadb"])
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_two_dc_starts_answers_and_stops_cleanly(engine, stop_signal):
    if engine == "mariadb" and not _have_mariadbd() and not os.environ.get("CI"):
        pytest.skip("MariaDB: mariadbd is not installed")
    env = {k: v for k, v in os.environ.items() if k != "METASERVER_MYSQL_URL"}
    proc = subprocess.Popen([str(SCRIPT), "--primary-engine", engine], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    try:
        out = _read_until_ready(proc)
        addresses = dict(re.findall(r"^dc (A primary|B follower)\s+(127\.0\.0\.1:\d+)", out, re.M))
        pids = [int(p) for p in re.findall(r"pid (\d+)$", out, re.M)]
        work = re.search(r"^work dir\s+(\S+)", out, re.M).group(1)
        assert len(addresses) == 2 and len(pids) == 3 and os.path.isdir(work)
        wait_for(lambda: status(addresses["A primary"], 1), what="the primary")
        wait_for(lambda: status(addresses["B follower"], 1), what="the follower")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert set(pids) <= {c.pid for c in children}

        proc.send_signal(stop_signal)
        started = time.monotonic()
        proc.wait(STOP_LIMIT_S + 5)
        took = time.monotonic() - started
        stderr = proc.stderr.read().decode()
        assert took < STOP_LIMIT_S, f"stopping took {took:.1f} s"
        assert (proc.returncode, stderr) == (0, ""), stderr
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not os.path.exists(work)
    finally:
        _stop_leftovers(proc)
        proc.stdout.close()
        proc.stderr.close()


def _two_dc_module():
    spec = importlib.util.spec_from_file_location("two_dc", ROOT / "deploy" / "two_dc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _no_binary(name: str) -> str:
    raise FileNotFoundError(f"{name} is not installed")


def test_without_mariadbd_the_primary_runs_on_rocksdb_and_says_so(monkeypatch, capsys):
    two_dc = _two_dc_module()
    monkeypatch.setattr(two_dc, "server_binary", _no_binary)   # a machine without MariaDB
    assert two_dc._primary_engine(None, None) == "rocksdb"
    assert capsys.readouterr().out == \
        "two-dc: MariaDB (mariadbd) is not installed: the primary runs on RocksDB too\n"
    assert two_dc._primary_engine(None, "mysql+pymysql://u:p@127.0.0.1:1/db") == "mariadb"


def test_asking_for_mariadb_without_it_is_one_line(monkeypatch, capsys):
    two_dc = _two_dc_module()
    monkeypatch.setattr(two_dc, "server_binary", _no_binary)
    monkeypatch.delenv("METASERVER_MYSQL_URL", raising=False)
    assert two_dc.main(["--primary-engine", "mariadb"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"two-dc: mariadb: mariadbd is not installed .*\n", captured.err)
