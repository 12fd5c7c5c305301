"""`metactl status`: what an operator asks a server first (version, engine, uptime,
role, epoch, replication, security, limits, usage), on a primary and on a follower;
`metactl --version`."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from metaserver import __version__
from metaserver.client import Client
from metaserver.service.auth import Role, create_token
from metaserver.service.config import ServerConfig
from metaserver.service.server import start
from metaserver.testing import free_port
from metaserver.testing.metaserver_process import wait_for

METACTL = str(pathlib.Path(sys.executable).parent / "metactl")


def _metactl(*args: str, token: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASERVER_TOKEN")}
    if token:
        env["METASERVER_TOKEN"] = token
    return subprocess.run([METACTL, *args], capture_output=True, text=True, timeout=60,
                          env=env)


def _fields(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_status_of_a_protected_primary_and_its_follower(tmp_path):
    store = str(tmp_path / "tokens.json")
    reader = create_token(store, [Role.READ], "ops")[1]
    writer = create_token(store, [Role.WRITE], "app")[1]
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                 token_store=store, client_ops_per_s=500))
    follower = None
    try:
        with Client(primary.address, token=writer) as client:
            client.mkdir(1, b"a")
        fields = _fields(_metactl("--server", primary.address, "status", token=reader))
        assert fields["version"] == __version__ and fields["engine"] == "memory"
        assert fields["server"] == f"{primary.address} (serving {primary.address})"
        assert fields["role"] == "primary" and fields["epoch"] == "1"
        assert fields["security"] == "tokens" and fields["limits"] == "500 calls/s per client"
        assert fields["inodes"].startswith("used 2 of ")
        assert fields["uptime"].startswith("00:00:")
        refused = _metactl("--server", primary.address, "status")
        assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr

        token_file = tmp_path / "replication.token"
        token_file.write_text(create_token(store, [Role.REPLICATION], "f")[1])
        follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                      follow=primary.address, token_store=store,
                                      follow_token_file=str(token_file)))
        def follower_status():
            return _fields(_metactl("--server", follower.address, "status", token=reader))
        wait_for(lambda: "(connected" in follower_status()["primary"], what="link up")
        fields = follower_status()
        assert fields["role"] == "follower"
        assert fields["primary"].startswith(f"{primary.address} (connected")
        assert fields["lag"].endswith(" s") and "applied_seq" in fields
    finally:
        if follower is not None:
            follower.stop()
        primary.stop()


def test_version():
    result = _metactl("--version")
    assert (result.returncode, result.stdout) == (0, f"metactl {__version__}\n")


def test_status_of_an_unreachable_server_is_the_usual_one_line():
    address = f"127.0.0.1:{free_port()}"       # nobody listens there
    result = _metactl("--server", address, "status")
    assert (result.returncode, result.stderr) == (
        1, f"metactl: cannot reach metaserver at {address}: Connection refused\n")
