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
    assert proc.stderr.count("\n") == 1 and "input should be " in proc.stderr \
        and repr(value) in proc.stderr


def test_access_log_has_every_call_with_status_errno_and_token_id(tmp_path):
    from metaserver.service.auth import Role, create_token
    store = str(tmp_path / "tokens.json")
    token = create_token(store, [Role.READ], "reader")[1]
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([METASERVER, "serve", "--meta-url", "memory://", "--listen",
                             address, "--token-store", store, "--access-log-sample", "1",
                             "--log-format", "json"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _serving(address), what="serving")
        from metaserver.client import Client, RetryPolicy
        with Client(address, token=token, retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(FileNotFoundError):
                client.lookup(1, b"missing")
            with pytest.raises(PermissionError):
                client.mkdir(1, b"d")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    calls = [json.loads(line)["access"] for line in err.splitlines()
             if '"access"' in line]
    lookup = [c for c in calls if c["method"] == "Lookup"]
    assert lookup and lookup[0]["status"] == "NOT_FOUND" and lookup[0]["errno"] == 2
    assert lookup[0]["name"] == "missing" and lookup[0]["parent"] == 1
    assert lookup[0]["token"] == token.split(".")[0] and token.split(".")[1] not in err
    mkdir = [c for c in calls if c["method"] == "Mkdir"]
    assert mkdir and mkdir[0]["status"] == "PERMISSION_DENIED" and mkdir[0]["errno"] == 1
    assert all(c["ms"] >= 0 and c["peer"] for c in calls)
