"""What an operator sees from the commands, against real `metaserver serve` processes:
sessions in `metactl status`, link parents in `metactl stat`, progress on a terminal,
a data dir another process holds, load into a non-empty engine, no gRPC core log
lines, one help and usage-error style in every CLI, per-method metrics."""

from __future__ import annotations

import os
import pathlib
import pty
import re
import select
import subprocess
import sys
import urllib.request

import grpc
import pytest

from metabench import scale
from metaserver.client import Client
from metaserver.testing import free_port
from metaserver.testing.metaserver_process import METASERVER, format_store, status, wait_for
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc

BIN = pathlib.Path(sys.executable).parent
METACTL = str(BIN / "metactl")


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASERVER_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, **kwargs)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `metaserver serve` process on a RocksDB store: (process, address, url, metrics)."""
    url = f"rocksdb://{tmp_path_factory.mktemp('operator')}/db"
    format_store(url)
    address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([METASERVER, "serve", "--meta-url", url, "--listen", address,
                             "--metrics-listen", metrics],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: status(address, 1), what="server up")
        yield proc, address, url, metrics
    finally:
        proc.terminate()
        proc.wait(15)


def _fields(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_status_lists_client_sessions(served):
    _, address, _, _ = served
    with Client(address) as client:
        held = client.create(1, b"held-open")
        session = os.urandom(16)
        client.renew_session(session, 60_000)
        client.hold_inode(session, held.ino)
        fields = _fields(_run(METACTL, "--server", address, "status"))
        client.close_session(session)
        after = _fields(_run(METACTL, "--server", address, "status"))
    assert fields["sessions"] == "1"
    lease = fields[f"session {session.hex()}"]
    assert re.fullmatch(r"lease ends in (59|60)\.\d s; holds or locks 1 inodes", lease), lease
    assert after["sessions"] == "0" and f"session {session.hex()}" not in after


def test_stat_shows_link_parents_and_symlink_target(served):
    _, address, _, _ = served
    with Client(address) as client:
        top = client.mkdir(1, b"links")
        sub = client.mkdir(top.ino, b"sub")
        f = client.create(top.ino, b"f")
        client.link(f.ino, sub.ino, b"g")
        client.link(f.ino, sub.ino, b"h")
        client.create(top.ino, b"single")
        client.symlink(top.ino, b"s", "f")
    stat = _run(METACTL, "--server", address, "stat", "/links/f")
    assert stat.returncode == 0, stat.stderr
    assert [line for line in stat.stdout.splitlines() if line.startswith("link: ")] == [
        f"link: /links (inode {top.ino}) x1", f"link: /links/sub (inode {sub.ino}) x2"]
    single = _run(METACTL, "--server", address, "stat", "/links/single").stdout
    assert not re.search(r"^link: ", single, re.MULTILINE) and f"parent: {top.ino}" in single
    assert "target: f" in _run(METACTL, "--server", address, "stat", "/links/s").stdout


def _on_a_terminal(*argv: str) -> tuple[int, str]:
    """Run a command with its stderr on a pseudo-terminal: (exit status, what it showed)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=follower, env={**os.environ, "COLUMNS": "100"})
        os.close(follower)
        follower = -1
        shown = b""
        while True:     # read the terminal until the command is gone and it is drained
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:         # EIO: the terminal's last writer closed it
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(60), shown.decode("utf-8", "replace")
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_rm_r_shows_a_progress_bar_on_a_terminal(served):
    _, address, _, _ = served
    with Client(address) as client:
        tree = client.mkdir(1, b"bar")
        for i in range(5):
            client.create(tree.ino, f"f{i}".encode())
    code, text = _on_a_terminal(METACTL, "--server", address, "rm", "-r", "/bar")
    assert code == 0
    assert "rm: removed" in text and re.search(r"\b6\b.*entries", text), text
    assert "metactl: rm: removed" not in text       # the piped form is not used
    with Client(address) as client, pytest.raises(FileNotFoundError):
        client.resolve(b"/bar")


def test_dump_counts_bytes_on_a_terminal_and_only_its_summary_stays(tmp_path):
    url = f"rocksdb://{tmp_path}/store"
    format_store(url)
    dump = tmp_path / "ns.dump"
    code, text = _on_a_terminal(METACTL, "dump", "--meta-url", url, str(dump))
    assert code == 0
    assert "dump: wrote" in text and "bytes" in text, text
    piped = _run(METACTL, "dump", "--meta-url", url, str(tmp_path / "again.dump"))
    assert (piped.returncode, piped.stderr) == (0, "")
    assert piped.stdout.startswith("dumped ") and piped.stdout.count("\n") == 1


def test_a_data_dir_in_use_is_named_with_its_holder(served):
    proc, _, url, _ = served
    second = _run(METASERVER, "serve", "--meta-url", url, "--listen",
                  f"127.0.0.1:{free_port()}")
    path = url.removeprefix("rocksdb://")
    held = f"data dir {path} in use by another process (pid {proc.pid})"
    assert second.returncode != 0 and held in second.stderr, second.stderr
    assert second.stderr.count("\n") == 1
    fsck = _run(METACTL, "fsck", "--meta-url", url)
    assert (fsck.returncode, fsck.stderr) == (1, f"metactl: {url}: {held}\n")


def test_load_into_a_non_empty_engine_names_a_path(tmp_path):
    source, target = f"rocksdb://{tmp_path}/source", f"rocksdb://{tmp_path}/target"
    for url in (source, target):
        format_store(url)
    dump = str(tmp_path / "ns.dump")
    assert _run(METACTL, "dump", "--meta-url", source, dump).returncode == 0
    refused = _run(METACTL, "load", "--meta-url", target, dump)
    assert refused.returncode == 1
    assert "(/ (the root directory) exists)" in refused.stderr, refused.stderr
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([METASERVER, "serve", "--meta-url", target, "--listen", address],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: status(address, 1), what="server up")
        with Client(address) as client:
            client.mkdir(1, b"projects")
    finally:
        proc.terminate()
        proc.wait(15)
    refused = _run(METACTL, "load", "--meta-url", target, dump)
    assert "(/projects exists)" in refused.stderr, refused.stderr


def test_no_grpc_core_log_lines(served):
    """A port in use: the one line of metaserver's own, not gRPC core's add_port.cc."""
    _, address, _, _ = served
    busy = _run(METASERVER, "serve", "--meta-url", "memory://", "--listen", address)
    assert busy.returncode != 0
    assert busy.stderr.count("\n") == 1 and f"cannot listen on {address}" in busy.stderr, \
        busy.stderr


def test_usage_errors_are_one_line_in_every_cli():
    for argv, prog in (([METACTL, "ls", "--bogus"], "metactl"),
                       ([METASERVER, "serve", "--bogus"], "metaserver"),
                       ([str(BIN / "metafs"), "mount", "--bogus"], "metafs"),
                       ([str(BIN / "metabench"), "--bogus"], "metabench")):
        result = _run(*argv)
        assert (result.returncode, result.stdout) == (2, ""), argv
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"{prog}: ") \
            and "--bogus" in result.stderr, result.stderr


def test_help_has_no_type_labels_for_flags_and_shows_versions():
    for prog in ("metactl", "metaserver", "metafs", "metabench"):
        version = _run(str(BIN / prog), "--version")
        assert version.returncode == 0 and version.stdout.startswith(f"{prog} "), prog
    for argv in (["metactl", "--help"], ["metactl", "promote", "--help"],
                 ["metaserver", "serve", "--help"], ["metafs", "mount", "--help"]):
        shown = _run(str(BIN / argv[0]), *argv[1:]).stdout
        assert "<bool>" not in shown and "<float>" not in shown and "--" in shown, argv
    serve = _run(METASERVER, "serve", "--help").stdout
    assert "(default: 127.0.0.1:7420)" in " ".join(serve.split())


def test_every_metabench_scale_option_has_help():
    actions = [a for a in scale.parser()._actions if a.option_strings]
    assert actions and all(a.help for a in actions), \
        [a.option_strings for a in actions if not a.help]


def test_every_rpc_is_counted_by_method_and_usage_is_exported(served):
    _, address, _, metrics = served
    with Client(address) as client:
        client.create(1, b"counted")
        used = client.statfs().used_inodes
    with grpc.insecure_channel(address) as channel:
        pb_grpc.MetadataStub(channel).Echo(pb.EchoRequest())
        replication_pb2_grpc.ReplicationStub(channel).Status(rpb.StatusRequest())
        with pytest.raises(grpc.RpcError):
            pb_grpc.MetadataStub(channel).GetAttr(pb.GetAttrRequest(ino=10**12))
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    for service, method, code in (("Metadata", "Create", "OK"), ("Metadata", "Echo", "OK"),
                                  ("Replication", "Status", "OK"),
                                  ("Metadata", "GetAttr", "NOT_FOUND")):
        assert re.search(rf'metaserver_grpc_server_handled_total\{{grpc_code="{code}",'
                         rf'grpc_method="{method}",grpc_service="{service}"}} [1-9]', text), method
        assert (f'metaserver_grpc_server_handling_seconds_count{{grpc_method="{method}",'
                f'grpc_service="{service}"}}') in text
    assert 'metaserver_ops_total{op="create",outcome="ok"}' in text
    assert 'op="mknod"' not in text
    inodes = float(re.search(r"^metaserver_inodes_used (\S+)$", text, re.MULTILINE).group(1))
    assert inodes == used
    assert re.search(r"^metaserver_bytes_used 0\.0$", text, re.MULTILINE)
