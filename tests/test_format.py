"""Formatting is explicit and engine URLs are strict (issue 9, "Safety first"): nothing
opens, serves, dumps or checks a namespace that was never formatted, nothing creates a
store except `metaserver format`, `metactl load` and a follower's bootstrap, malformed
URLs are refused in one line, and both CLIs read METASERVER_META_URL."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import format_url, formatted
from engines import BadEngineUrl, NotFormatted, open_engine
from metaserver.dump import dump, load
from metaserver.errors import FsError
from metaserver.runner import Runner, format_namespace
from metaserver.service import ConfigError, load_config
from metaserver.types import ROOT_INO
from test_serve_cli import SERVING_LINE, WAIT_S, serve_process  # noqa: F401 (a fixture)

BIN = Path(sys.executable).parent
ENV_NAME = "METASERVER_META_URL"


def cli(prog: str, *args: str, cwd: Path | None = None, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if k != ENV_NAME}
    return subprocess.run([str(BIN / prog), *args], capture_output=True, text=True,
                          timeout=WAIT_S, cwd=cwd, env={**environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command, checked for its form."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def serve(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`metaserver serve` that must exit by itself (it fails to start)."""
    return cli("metaserver", "serve", "--listen", "127.0.0.1:0", *args, **kwargs)


def advice(url: str) -> str:
    return f"no metaserver namespace at {url}; run `metaserver format --meta-url {url}` first"


# --- a missing or unformatted namespace is refused, and nothing is created ----------------------

def test_serve_on_a_missing_rocksdb_path_fails_and_creates_nothing(tmp_path):
    url = f"rocksdb://{tmp_path}/missing"
    result = serve("--meta-url", url)
    assert result.returncode == 2
    assert one_line(result).endswith(advice(url))
    assert not (tmp_path / "missing").exists()


def test_serve_on_an_unformatted_store_fails(tmp_path):
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    open_engine(url, create=True).close()          # a store, but no namespace in it
    result = serve("--meta-url", url)
    assert result.returncode == 2
    assert one_line(result).endswith(advice(url))


@pytest.mark.parametrize("command", ["dump", "fsck"])
def test_metactl_on_a_missing_namespace_fails_creates_nothing_writes_no_dump(tmp_path, command):
    url = f"rocksdb://{tmp_path}/nonexistent"
    args = [command, "--meta-url", url] + ([str(tmp_path / "x.dump")] if command == "dump" else [])
    result = cli("metactl", *args)
    assert (result.returncode, result.stdout) == (1, "")
    assert one_line(result) == f"metactl: {url}: {advice(url)}"
    assert sorted(os.listdir(tmp_path)) == []      # neither the store nor a dump file


@pytest.mark.parametrize("command", ["dump", "fsck"])
def test_metactl_on_an_unformatted_store_fails(tmp_path, command):
    url = f"rocksdb://{tmp_path}/empty"
    open_engine(url, create=True).close()
    args = [command, "--meta-url", url] + ([str(tmp_path / "x.dump")] if command == "dump" else [])
    result = cli("metactl", *args)
    assert result.returncode == 1
    assert one_line(result) == f"metactl: {url}: {advice(url)}"
    assert not (tmp_path / "x.dump").exists()


def test_runner_refuses_an_unformatted_engine_naming_its_url(tmp_path):
    engine = open_engine(f"rocksdb://{tmp_path}/db", create=True)
    try:
        with pytest.raises(NotFormatted, match=f"no metaserver namespace at rocksdb://{tmp_path}/db"):
            Runner(engine)
        assert engine.last_seq() == 0           # and it wrote nothing
    finally:
        engine.close()


def test_opening_without_create_makes_no_store(tmp_path):
    for url in (f"rocksdb://{tmp_path}/r", f"sqlite:///{tmp_path}/s.sqlite"):
        with pytest.raises(NotFormatted):
            open_engine(url)
    assert os.listdir(tmp_path) == []


def test_a_password_never_shows_in_the_advice():
    assert "hunter2" not in str(NotFormatted("mysql+pymysql://u:hunter2@db:3306/meta"))


# --- formatting ------------------------------------------------------------------------------

def test_format_twice_refuses_the_second_time_and_keeps_the_data(tmp_path):
    url = f"rocksdb://{tmp_path}/ns"
    first = cli("metaserver", "format", "--meta-url", url)
    assert (first.returncode, first.stdout) == (0, f"formatted {url}\n")
    engine = open_engine(url)
    Runner(engine).call("mkdir", parent=ROOT_INO, name=b"keep")
    engine.close()

    second = cli("metaserver", "format", "--meta-url", url)
    assert second.returncode == 1
    assert one_line(second) == \
        f"metaserver: {url}: already formatted: formatting never overwrites a namespace"
    engine = open_engine(url)
    try:
        assert Runner(engine).call("lookup", parent=ROOT_INO, name=b"keep").name == b"keep"
    finally:
        engine.close()


def test_format_refuses_a_store_that_holds_keys_without_a_format_marker(tmp_path):
    engine = open_engine(f"rocksdb://{tmp_path}/db", create=True)
    try:
        with engine.begin() as txn:
            txn.put(b"A-something", b"v")
            txn.commit(b"")
        with pytest.raises(FsError, match="no format marker") as refused:
            format_namespace(engine)
        assert refused.value.errno == errno.EEXIST
        with engine.snapshot() as txn:
            assert [k for k, _ in txn.scan(b"", b"\xff")] == [b"A-something"]
    finally:
        engine.close()


def test_format_refuses_memory_which_keeps_nothing():
    result = cli("metaserver", "format", "--meta-url", "memory://")
    assert result.returncode == 1
    assert "nothing to format" in one_line(result)


def test_a_loaded_engine_is_formatted(tmp_path):
    source = formatted(open_engine("memory://"))
    Runner(source).call("mkdir", parent=ROOT_INO, name=b"d")
    data = io.BytesIO()
    dump(source, data)
    target = open_engine(f"rocksdb://{tmp_path}/copy", create=True)
    try:
        load(target, io.BytesIO(data.getvalue()))
        assert Runner(target).call("lookup", parent=ROOT_INO, name=b"d").name == b"d"
    finally:
        target.close()


def test_metactl_load_creates_its_target(tmp_path):
    source = format_url(f"rocksdb://{tmp_path}/source")
    path = tmp_path / "ns.dump"
    assert cli("metactl", "dump", "--meta-url", source, str(path)).returncode == 0
    copy = f"rocksdb://{tmp_path}/copy"
    assert cli("metactl", "load", "--meta-url", copy, str(path)).returncode == 0
    assert cli("metactl", "fsck", "--meta-url", copy).returncode == 0


# --- malformed URLs --------------------------------------------------------------------------

MALFORMED = [
    ("rocksdb:/relative", "rocksdb: needs // before the path"),
    ("rocksdb:relative", "rocksdb: needs // before the path"),
    ("rocksdb://", "no data directory"),
    ("rocksdb:///x?sync=0", "takes no ?query"),
    ("memory://something", "nothing may follow memory://"),
    ("nosuch://x", "unknown engine 'nosuch'"),
    ("/var/lib/metaserver", "not an engine URL"),
    ("sqlite://", "no database file"),
    ("mysql+pymysql://u:hunter2@db:port/meta", "the port is not a number"),
    ("mysql+pymysql://u:hunter2@db:3306/", "no database name"),
    ("postgresql:///meta", "no host"),
    ("tikv://pd/prefix", "is not HOST:PORT"),
]


@pytest.mark.parametrize("url, why", MALFORMED)
def test_malformed_urls_are_refused_by_open_engine(url, why):
    with pytest.raises(BadEngineUrl, match=why.replace("?", r"\?")):
        open_engine(url)


@pytest.mark.parametrize("url, why", MALFORMED)
def test_malformed_urls_are_refused_in_one_line_by_both_clis(tmp_path, url, why):
    shown = url.replace("hunter2", "***")
    for prog, args, code, prefix in (
            ("metaserver", ["serve", "--listen", "127.0.0.1:0"], 2, f"metaserver: meta_url {shown}: "),
            ("metaserver", ["format"], 2, f"metaserver: meta_url {shown}: "),
            ("metactl", ["fsck"], 1, f"metactl: {shown}: "),
            ("metactl", ["dump", str(tmp_path / "x.dump")], 1, f"metactl: {shown}: ")):
        result = cli(prog, *args, "--meta-url", url, cwd=tmp_path)
        assert result.returncode == code, (prog, args, result.stderr)
        line = one_line(result)
        assert line.startswith(prefix) and why in line, line
        assert "hunter2" not in line
    assert os.listdir(tmp_path) == []          # not even a relative directory


def test_relative_rocksdb_urls_stay_allowed(tmp_path):
    assert cli("metaserver", "format", "--meta-url", "rocksdb://rel/ns",
               cwd=tmp_path).returncode == 0
    assert (tmp_path / "rel" / "ns" / "CURRENT").is_file()


# --- one environment variable for both CLIs --------------------------------------------------

def test_config_precedence_flag_then_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_NAME, "memory://")
    assert load_config().meta_url == "memory://"
    path = tmp_path / "metaserver.toml"
    path.write_text(f'data_dir = "{tmp_path}/from-file"\n')
    assert load_config(str(path)).meta_url == f"rocksdb://{tmp_path}/from-file"
    assert load_config(str(path), meta_url=f"rocksdb://{tmp_path}/flag").meta_url == \
        f"rocksdb://{tmp_path}/flag"
    assert load_config(data_dir=str(tmp_path / "d")).meta_url == f"rocksdb://{tmp_path}/d"
    monkeypatch.setenv(ENV_NAME, "rocksdb:/oops")
    with pytest.raises(ConfigError, match="meta_url rocksdb:/oops: rocksdb: needs //"):
        load_config()
    monkeypatch.setenv(ENV_NAME, "")            # empty is unset, as for metactl
    assert load_config(data_dir=str(tmp_path)).meta_url == f"rocksdb://{tmp_path}"


def test_both_clis_read_the_environment_variable(tmp_path, monkeypatch, serve_process):
    url = f"rocksdb://{tmp_path}/ns"
    env = {ENV_NAME: url}
    assert cli("metaserver", "format", env=env).stdout == f"formatted {url}\n"
    assert cli("metactl", "fsck", env=env).returncode == 0
    monkeypatch.setenv(ENV_NAME, url)           # inherited by the server process
    server = serve_process("--listen", "127.0.0.1:0")
    assert server.wait_for(SERVING_LINE).group(2, 3) == ("rocksdb", f"{tmp_path}/ns")
