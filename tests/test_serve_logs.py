"""`metaserver serve --log-level/--log-format`: JSON lines a log collector can parse, and
a level that hides what is below it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metaserver.testing import free_port
from metaserver.testing.metaserver_process import wait_for

METASERVER = os.path.join(os.path.dirname(sys.executable), "metaserver")


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=1).status == \
            health_pb2.HealthCheckResponse.SERVING


def _serve_briefly(*flags: str) -> list[str]:
    """Serve memory:// until healthy, then SIGTERM; the lines it wrote to stderr."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([METASERVER, "serve", "--meta-url", "memory://", "--listen",
                             address, *flags], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _serving(address), what="serving")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return err.splitlines()


def test_json_logs_are_one_object_per_line():
    records = [json.loads(line) for line in _serve_briefly("--log-format", "json")]
    serving = [r for r in records if "serving on" in r["message"]]
    assert serving and serving[0]["levelname"] == "INFO" and serving[0]["name"] == "metaserver"
    assert any(r["message"] == "metaserver stopping" for r in records)


def test_log_level_hides_what_is_below_it():
    assert any("serving on" in line for line in _serve_briefly("--log-level", "info"))
    assert not any("serving on" in line for line in _serve_briefly("--log-level", "warning"))


@pytest.mark.parametrize("flag, value", [("--log-level", "loud"), ("--log-format", "xml")])
def test_bad_log_settings_are_one_line(flag, value):
    proc = subprocess.run([METASERVER, "serve", "--meta-url", "memory://", flag, value],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "must be one of" in proc.stderr
