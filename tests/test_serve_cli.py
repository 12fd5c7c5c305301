"""`metaserver serve` as operators run it: configuration from TOML and flags, the one
start-up log line, health, graceful exit on SIGTERM, one-line errors."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import format_url
from metaserver import __version__
from metaserver.service import ConfigError, ServerConfig, StartError, load_config, start
from metaserver.service.server import describe_engine
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

METASERVER = str(Path(sys.executable).with_name("metaserver"))
SERVING_LINE = re.compile(rf"metaserver {re.escape(__version__)} serving on "
                          r"127\.0\.0\.1:(\d+) engine=(\S+) data=(\S+)")
WAIT_S = 30      # generous bounds so a slow machine fails loudly instead of hanging


# --- configuration ------------------------------------------------------------------------

def test_defaults_derive_an_absolute_rocksdb_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ServerConfig()
    assert config.meta_url == f"rocksdb://{tmp_path}/metaserver-data"
    assert (config.listen, config.workers, config.total_bytes, config.total_inodes) == \
        ("127.0.0.1:7420", 16, 1 << 50, 1 << 40)
    assert (config.request_ttl_s, config.changelog_keep, config.maintenance_interval_s,
            config.dir_mtime_skip_ms) == (3600, 1_000_000, 5, 100)


def test_toml_file_with_flags_on_top(tmp_path):
    path = tmp_path / "metaserver.toml"
    path.write_text('meta_url = "memory://"\nlisten = "127.0.0.1:9000"\nworkers = 4\n'
                    "request_ttl_s = 60\n")
    config = load_config(str(path), listen="127.0.0.1:9001", meta_url=None)
    assert (config.meta_url, config.listen, config.workers, config.request_ttl_s) == \
        ("memory://", "127.0.0.1:9001", 4, 60)
    assert load_config(str(path), data_dir=str(tmp_path / "d")).meta_url == \
        f"rocksdb://{tmp_path}/d"


@pytest.mark.parametrize("text, overrides, message", [
    ("workers = 4\nthreads = 2\n", {}, "unknown configuration keys: threads"),
    ('workers = "many"\n', {}, "workers: input should be a valid integer, not .many."),
    ("workers = 0\n", {}, "workers: input should be greater than 0, not 0"),
    ("workers = \n", {}, "not valid TOML"),
    ("workers = true\n", {}, "workers: input should be a valid integer, not True"),
    ('log_level = "loud"\n', {}, "log_level: input should be 'debug', 'info', 'warning' or"),
    ("access_log_sample = 1.5\n", {}, "access_log_sample: input should be less than or equal"),
    ('tls_cert = "c.pem"\n', {}, "tls_cert and tls_key go together"),
    ("", {"listen": "7420"}, "listen: must be HOST:PORT"),
    ("", {"meta_url": "memory://", "data_dir": "/x"}, "not both"),
])
def test_bad_configuration_is_one_clear_error(tmp_path, text, overrides, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), **overrides)


@pytest.mark.parametrize("url, description", [
    ("rocksdb:///var/lib/ms", "engine=rocksdb data=/var/lib/ms"),
    ("memory://", "engine=memory"),
    ("tikv://admin:hunter2@10.0.0.1:2379/ms", "engine=tikv data=10.0.0.1:2379/ms"),
])
def test_engine_description_never_shows_credentials(url, description):
    assert describe_engine(url) == description


# --- the command --------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([METASERVER, *args], capture_output=True, text=True, timeout=WAIT_S)


class ServeProcess:
    """`metaserver serve` in a subprocess, its stderr read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([METASERVER, "serve", *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern) -> re.Match:
        while True:
            line = self._queue.get(timeout=WAIT_S)
            assert line is not None, f"exited before logging {pattern.pattern}: {self.lines}"
            self.lines.append(line)
            if match := pattern.search(line):
                return match

    def finish(self) -> int:
        code = self.proc.wait(timeout=WAIT_S)
        while (line := self._queue.get(timeout=WAIT_S)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve_process():
    started: list[ServeProcess] = []

    def launch(*args: str) -> ServeProcess:
        started.append(ServeProcess(*args))
        return started[-1]
    yield launch
    for process in started:
        process.kill()


def test_serve_logs_one_line_serves_health_and_exits_on_sigterm(tmp_path, serve_process):
    data = tmp_path / "data"
    assert run("format", "--data-dir", str(data)).stdout == f"formatted rocksdb://{data}\n"
    server = serve_process("--data-dir", str(data), "--listen", "127.0.0.1:0")
    port, engine, data_path = server.wait_for(SERVING_LINE).groups()
    assert (engine, data_path) == ("rocksdb", str(data))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.MetadataStub(channel)
        assert stub.Mkdir(pb.MkdirRequest(request_id=b"r", parent=1, name=b"d"),
                          timeout=WAIT_S).name == b"d"
    server.proc.send_signal(signal.SIGTERM)
    assert server.finish() == 0
    assert sum(bool(SERVING_LINE.search(line)) for line in server.lines) == 1
    assert not any("Traceback" in line for line in server.lines)


def test_engine_that_cannot_open_exits_2_with_one_line(tmp_path):
    format_url(f"rocksdb://{tmp_path}/data")
    holder = start(ServerConfig(data_dir=str(tmp_path / "data"), listen="127.0.0.1:0"))
    try:    # RocksDB allows one process per data directory
        result = run("serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0")
    finally:
        holder.stop(grace=0)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot open metadata engine engine=rocksdb" in result.stderr


def test_busy_port_is_a_start_error():
    first = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    try:
        with pytest.raises(StartError, match=f"cannot listen on {first.address}"):
            start(ServerConfig(meta_url="memory://", listen=first.address))
    finally:
        first.stop(grace=0)


@pytest.mark.parametrize("args, message", [
    (["serve", "--bogus"], "No such option: --bogus"),
    (["serve", "--listen", "nowhere"], "listen: must be HOST:PORT"),
    (["serve", "--config", "/nonexistent/metaserver.toml"], "cannot read config file"),
    (["serve", "--meta-url", "nosuch://x", "--listen", "127.0.0.1:0"], "unknown engine"),
    (["serve", "--meta-url", "memory://", "--listen", "127.0.0.1:0", "--tls-cert",
      "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
     "cannot read TLS key /nonexistent/k.pem: No such file or directory"),
])
def test_bad_flags_are_one_line_and_nonzero_exit(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_version():
    result = run("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"metaserver {__version__}")

