"""metactl chmod, chown, truncate and stat's symlink target, and --version on every
CLI, run as an operator runs them, against an in-process server."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from metaserver import __version__
from metaserver.service.config import ServerConfig
from metaserver.service.server import start

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture(scope="module")
def address():
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    yield srv.address
    srv.stop()


def _metactl(address: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASERVER_TOKEN")}
    return subprocess.run([str(BIN / "metactl"), "--server", address, *args],
                          capture_output=True, text=True, timeout=60, env=env)


def _stat(address: str, path: str) -> dict[str, str]:
    result = _metactl(address, "stat", path)
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_chmod_chown_truncate(address):
    assert _metactl(address, "touch", "/f", "/g").returncode == 0
    assert _metactl(address, "chmod", "640", "/f", "/g").returncode == 0
    assert _stat(address, "/f")["mode"].startswith("0640") and \
        _stat(address, "/g")["mode"].startswith("0640")
    assert _metactl(address, "chown", "1000:2000", "/f").returncode == 0
    assert (_stat(address, "/f")["uid"], _stat(address, "/f")["gid"]) == ("1000", "2000")
    assert _metactl(address, "chown", ":3000", "/f").returncode == 0
    assert (_stat(address, "/f")["uid"], _stat(address, "/f")["gid"]) == ("1000", "3000")
    assert _metactl(address, "truncate", "-s", "4K", "/f").returncode == 0
    assert _stat(address, "/f")["size"] == "4096"


@pytest.mark.parametrize("args, says", [
    (("chmod", "rwx", "/f"), "metactl: rwx: MODE must be octal"),
    (("chmod", "17777", "/f"), "metactl: 17777: MODE must be octal"),
    (("chown", "bob", "/f"), "metactl: bob: give UID, UID:GID or :GID"),
    (("truncate", "-s", "1X", "/f"), "metactl: 1X: SIZE must be a number"),
    (("chmod", "644", "/missing"), "metactl: /missing: No such file or directory"),
])
def test_bad_arguments_are_one_line(address, args, says):
    result = _metactl(address, *args)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(says), result.stderr


def test_stat_shows_a_symlink_target(address):
    assert _metactl(address, "ln", "-s", "some/where", "/link").returncode == 0
    assert _stat(address, "/link")["target"] == "some/where"


@pytest.mark.parametrize("tool", ["metactl", "metaserver", "metabench"])
def test_every_cli_has_version(tool):
    result = subprocess.run([str(BIN / tool), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout) == (0, f"{tool} {__version__}\n")


@pytest.mark.parametrize("argv", [["metactl"], ["metactl", "--bogus"], ["metactl", "mv", "/a"],
                                  ["metactl", "token"], ["metaserver", "serve", "--bogus"]])
def test_usage_errors_are_one_line_with_exit_2(argv):
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"{argv[0]}: ")
    assert result.stderr.rstrip().endswith(f"(see {argv[0]} --help)")


@pytest.mark.parametrize("argv", [["metactl"], ["metactl", "token", "create"],
                                  ["metaserver", "serve"]])
def test_help_has_no_type_labels_on_flags_and_shows_env_vars(argv):
    result = subprocess.run([str(BIN / argv[0]), *argv[1:], "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "<bool>" not in result.stdout
    assert not [line for line in result.stdout.splitlines()
                if line.lstrip().startswith("--") and "<" in line.split()[1]]
    if argv == ["metactl"]:
        assert "env var:" in result.stdout and "default: 127.0.0.1:7420" in result.stdout


@pytest.fixture(scope="module")
def small_tree(address):
    """/t/b/c, /t/d (directories), /t/f (1536 bytes), /t/b/g."""
    for args in (("mkdir", "-p", "/t/b/c", "/t/d"), ("touch", "/t/f", "/t/b/g"),
                 ("truncate", "-s", "1536", "/t/f")):
        assert _metactl(address, *args).returncode == 0
    return address


def _out(address: str, *args: str) -> list[str]:
    result = _metactl(address, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_ls_flags(small_tree):
    a = small_tree
    assert _out(a, "ls", "-R", "/t") == ["/t:", "b", "d", "f", "", "/t/b:", "c", "g", "",
                                         "/t/b/c:", "", "/t/d:"]
    assert _out(a, "ls", "-a", "/t") == [".", "..", "b", "d", "f"]
    assert _out(a, "ls", "-aR", "/t/b")[:4] == ["/t/b:", ".", "..", "c"]
    ino = _stat(a, "/t")["ino"]
    assert _out(a, "ls", "-d", "-i", "/t") == [f"{ino:>10} /t"]
    long = {line.split()[-1]: line.split() for line in _out(a, "ls", "-lah", "/t")}
    assert set(long) == {".", "..", "b", "d", "f"}
    assert long["f"][4] == "1.5K" and long["."][0].startswith("d")
    assert _out(a, "ls", "-l", "/t/f")[0].split()[4] == "1536"


def test_tree_level(small_tree):
    assert _out(small_tree, "tree", "-L", "1", "/t") == [
        "/t", "├── b", "├── d", "└── f", "", "2 directories, 1 file"]
    assert _out(small_tree, "tree", "/t")[-1] == "3 directories, 2 files"


def test_rm_goes_on_past_a_failing_path_and_f_ignores_missing_ones(address):
    assert _metactl(address, "mkdir", "-p", "/r/d").returncode == 0
    assert _metactl(address, "touch", "/r/a", "/r/b").returncode == 0
    result = _metactl(address, "rm", "/r/a", "/r/nx", "/r/d", "/r/b")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["metactl: /r/nx: No such file or directory",
                                          "metactl: /r/d: Is a directory"]
    assert _out(address, "ls", "/r") == ["d"]                  # a and b went all the same
    forced = _metactl(address, "rm", "-f", "/r/nx", "/r/nx/y")
    assert (forced.returncode, forced.stderr) == (0, "")
    assert _metactl(address, "rm", "-rf", "/r/nx", "/r/d").returncode == 0
    assert _out(address, "ls", "/r") == []


def test_xattr_values_in_hex_and_base64(address):
    assert _metactl(address, "touch", "/x").returncode == 0
    assert _metactl(address, "xattr", "set", "/x", "user.k", "hi").returncode == 0
    assert _out(address, "xattr", "get", "-e", "hex", "/x", "user.k") == ["0x6869"]
    assert _out(address, "xattr", "list", "-d", "/x") == ["user.k=hi"]
    assert _out(address, "xattr", "list", "-d", "-e", "base64", "/x") == ["user.k=0saGk="]
    assert _out(address, "xattr", "list", "/x") == ["user.k"]
    bad = _metactl(address, "xattr", "list", "-e", "rot13", "/x")
    assert bad.returncode == 1 and bad.stderr.startswith("metactl: rot13: -e must be one of")


def test_info_by_path_and_by_inode(address):
    assert _metactl(address, "mkdir", "-p", "/i/sub").returncode == 0
    assert _metactl(address, "touch", "/i/sub/f").returncode == 0
    assert _metactl(address, "truncate", "-s", "100M", "/i/sub/f").returncode == 0
    assert _metactl(address, "xattr", "set", "/i/sub/f", "user.a", "1").returncode == 0
    fields = dict(line.split(": ", 1) for line in _out(address, "info", "/i/sub/f"))
    assert (fields["type"], fields["size"], fields["chunks"], fields["xattrs"]) == \
        ("regular", "104857600 (100M)", "2", "1")
    ino = _stat(address, "/i/sub")["ino"]
    by_ino = dict(line.split(": ", 1) for line in _out(address, "info", "-i", ino))
    assert (by_ino["path"], by_ino["type"], by_ino["entries"]) == ("/i/sub", "directory", "1")
    assert _metactl(address, "info").stderr == "metactl: info: give a PATH or -i INODE\n"
