"""The installed `metactl` console script, run as a subprocess against an in-process
server: its output, its effects (checked with the client) and its one-line errors."""

from __future__ import annotations

import itertools
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from metaserver.types import ROOT_INO, FileType

METACTL = shutil.which("metactl", path=str(pathlib.Path(sys.executable).parent))


_dirs = itertools.count()


@pytest.fixture
def top(client) -> str:
    """A fresh directory per test, as a path."""
    name = f"m{next(_dirs)}"
    client.mkdir(ROOT_INO, name)
    return f"/{name}"


@pytest.fixture
def metactl(server):
    """Run metactl against the server (through METASERVER_ADDRESS)."""
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "METASERVER_ADDRESS": server.address}
        return subprocess.run([METACTL, *args], env=env, capture_output=True, text=True,
                              timeout=60)
    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess) -> str:
    """The one error line, after checking the exit status and that nothing else came."""
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr.rstrip("\n")


def test_mkdir_p_touch_and_ls(metactl, client, top):
    ok(metactl("mkdir", "-p", f"{top}/a/b/c", f"{top}/a/b/c", f"{top}/z"))
    ok(metactl("mkdir", f"{top}/a/new"))
    ok(metactl("touch", f"{top}/a/f", f"{top}/a/g"))
    assert ok(metactl("ls", f"{top}/a")) == "b\nf\ng\nnew\n"
    assert client.resolve(f"{top}/a/b/c").type == FileType.DIRECTORY
    assert failed(metactl("mkdir", f"{top}/a")) == f"metactl: {top}/a: File exists"
    before = client.resolve(f"{top}/a/f").attr
    client.setattr(before.ino, atime_ns=1, mtime_ns=1)
    ok(metactl("touch", f"{top}/a/f"))
    after = client.getattr(before.ino)
    assert after.mtime_ns > 1 and after.atime_ns > 1 and after.ino == before.ino


def test_ls_l_shows_mode_links_owner_size_time_and_link_targets(metactl, client, top):
    d = client.resolve(top).ino
    f = client.create(d, "file", mode=0o640, uid=12, gid=34)
    client.setattr(f.ino, size=5)
    client.mkdir(d, "sub")
    client.symlink(d, "sl", "file")
    lines = ok(metactl("ls", "-l", top)).splitlines()
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    patterns = [rf"-rw-r-----\s+1\s+12\s+34\s+5 {when} file",
                rf"lrwxrwxrwx\s+1\s+0\s+0\s+4 {when} sl -> file",
                rf"drwxr-xr-x\s+2\s+0\s+0\s+0 {when} sub"]
    assert len(lines) == 3
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), line
    assert re.fullmatch(patterns[0].replace("file", f"{top}/file"),
                        ok(metactl("ls", "-l", f"{top}/file")).rstrip("\n"))


def test_stat_shows_every_attribute(metactl, client, top):
    f = client.create(client.resolve(top).ino, "f", mode=0o600)
    out = ok(metactl("stat", f"{top}/f"))
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    assert fields["path"] == f"{top}/f"
    assert set(fields) == {"path", "ino", "type", "mode", "uid", "gid", "atime_ns", "mtime_ns",
                           "ctime_ns", "nlink", "size", "rdev", "parent"}
    assert (fields["ino"], fields["type"], fields["mode"]) == \
        (str(f.ino), "regular", "0600 (-rw-------)")
    assert fields["mtime_ns"].startswith(f"{f.attr.mtime_ns} (")


def test_mv_renames_or_moves_into_a_directory(metactl, client, top):
    d = client.resolve(top).ino
    f = client.create(d, "f")
    client.mkdir(d, "dir")
    ok(metactl("mv", f"{top}/f", f"{top}/dir"))
    assert client.resolve(f"{top}/dir/f").ino == f.ino
    ok(metactl("mv", f"{top}/dir/f", f"{top}/renamed"))
    assert client.resolve(f"{top}/renamed").ino == f.ino
    assert failed(metactl("mv", f"{top}/gone", f"{top}/x")) == \
        f"metactl: {top}/gone: No such file or directory"


def test_ln_hard_and_symbolic(metactl, client, top):
    f = client.create(client.resolve(top).ino, "f")
    client.mkdir(client.resolve(top).ino, "dir")
    ok(metactl("ln", f"{top}/f", f"{top}/hard"))
    ok(metactl("ln", f"{top}/f", f"{top}/dir"))
    ok(metactl("ln", "-s", "../f", f"{top}/dir/soft"))
    assert client.resolve(f"{top}/hard").ino == client.resolve(f"{top}/dir/f").ino == f.ino
    assert client.getattr(f.ino).nlink == 3
    soft = client.resolve(f"{top}/dir/soft")
    assert soft.type == FileType.SYMLINK and client.readlink(soft.ino) == b"../f"


def test_rm_and_rm_r_of_a_tree(metactl, client, top):
    d = client.makedirs(f"{top}/tree/a/b")
    batch = client.batch()
    for i in range(1200):  # more than one page of the directory being emptied
        batch.create(d.ino, f"f{i}")
    batch.create(client.resolve(f"{top}/tree").ino, "top-file")
    batch.symlink(client.resolve(f"{top}/tree/a").ino, "link", "b")
    assert not any(isinstance(r, OSError) for r in batch.run())
    used = client.statfs().used_inodes
    assert failed(metactl("rm", f"{top}/tree")) == f"metactl: {top}/tree: Is a directory"
    removed = metactl("rm", "-r", f"{top}/tree")
    # Piped, its progress is one line at the end: the count of what went.
    assert (removed.returncode, removed.stdout) == (0, "")
    assert re.fullmatch(r"metactl: rm: removed 1,205 entries, \d+\.\d s\n", removed.stderr)
    with pytest.raises(FileNotFoundError):
        client.resolve(f"{top}/tree")
    assert client.statfs().used_inodes == used - 1205
    client.create(client.resolve(top).ino, "plain")
    ok(metactl("rm", f"{top}/plain"))
    assert list(client.readdir(client.resolve(top).ino)) == []


def test_rmdir(metactl, client, top):
    client.makedirs(f"{top}/full/inner")
    client.makedirs(f"{top}/empty")
    ok(metactl("rmdir", f"{top}/empty"))
    assert failed(metactl("rmdir", f"{top}/full")) == f"metactl: {top}/full: Directory not empty"
    ok(metactl("rmdir", f"{top}/full/inner", f"{top}/full"))
    assert list(client.readdir(client.resolve(top).ino)) == []


def test_xattr_roundtrip(metactl, top):
    ok(metactl("xattr", "set", top, "user.color", "blue"))
    ok(metactl("xattr", "set", top, "user.size", "L"))
    assert ok(metactl("xattr", "get", top, "user.color")) == "blue\n"
    assert ok(metactl("xattr", "list", top)) == "user.color\nuser.size\n"
    ok(metactl("xattr", "rm", top, "user.color"))
    assert ok(metactl("xattr", "list", top)) == "user.size\n"
    assert failed(metactl("xattr", "get", top, "user.color")) == \
        f"metactl: {top}: No data available"


def test_statfs(metactl, client):
    out = ok(metactl("statfs"))
    usage = client.statfs()
    assert re.fullmatch(r"bytes: total \d+ used \d+ avail \d+\ninodes: total \d+ used \d+ "
                        r"avail \d+\n", out)
    assert f"inodes: total {usage.total_inodes} " in out


def test_tree(metactl, client, top):
    client.makedirs(f"{top}/a/b")
    client.create(client.resolve(f"{top}/a/b").ino, "deep")
    client.create(client.resolve(f"{top}/a").ino, "file")
    client.symlink(client.resolve(top).ino, "link", "a/file")
    client.mkdir(client.resolve(top).ino, "z")
    assert ok(metactl("tree", top)) == "\n".join([
        top,
        "├── a",
        "│   ├── b",
        "│   │   └── deep",
        "│   └── file",
        "├── link -> a/file",
        "└── z",
        "",
        "3 directories, 3 files",
        ""])


@pytest.mark.parametrize("args", [("ls",), ("stat",), ("rm",), ("rmdir",), ("tree",),
                                  ("xattr", "list")])
def test_unknown_path_is_one_line(metactl, top, args):
    path = f"{top}/no/such"
    assert failed(metactl(*args, path)) == f"metactl: {path}: No such file or directory"


def test_dead_server_is_one_line():
    address = f"127.0.0.1:{free_port()}"   # nobody listens there
    result = subprocess.run([METACTL, "--server", address, "ls", "/"], capture_output=True,
                            text=True, timeout=60)
    assert failed(result) == f"metactl: cannot reach metaserver at {address}: Connection refused"

from conftest import free_port


def test_bad_usage_exits_2(metactl):
    assert metactl("mv", "/only-one").returncode == 2


def _touch_like_touch1(path: str) -> None:
    """What touch(1) does: create, and when that fails set the times (its errno counts)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY))
    except OSError:
        os.utime(path)


def _into_directory(call):
    """mv(1) and ln(1): a destination that is a directory gets the source's name inside."""
    def run(src: str, dst: str) -> None:
        call(src, os.path.join(dst, os.path.basename(src)) if os.path.isdir(dst) else dst)
    return run


# metactl command -> the system calls the same coreutils command makes on a local path
KERNEL = {"stat": os.lstat, "mkdir": os.mkdir, "touch": _touch_like_touch1, "rm": os.unlink,
          "rmdir": os.rmdir, "mv": _into_directory(os.rename), "ln": _into_directory(os.link),
          "ln -s": os.symlink}

TRAILING_SLASH_CASES = [
    ("stat", "f/"), ("stat", "f/."), ("stat", "f/.."), ("stat", "f//"), ("stat", "d/"),
    ("stat", "d/."), ("stat", "nx/"),
    ("mkdir", "nx/"), ("mkdir", "nx/."), ("mkdir", "f/"), ("mkdir", "d/"),
    ("touch", "nx/"), ("touch", "f/"), ("touch", "d/"),
    ("rm", "f/"), ("rm", "d/"), ("rm", "nx/"),
    ("rmdir", "d/"), ("rmdir", "f/"), ("rmdir", "nx/"),
    ("mv", "f/", "g"), ("mv", "f", "g/"), ("mv", "d/", "g/"), ("mv", "d", "g/"),
    ("mv", "f", "d/"), ("mv", "d", "f/"), ("mv", "nx/", "g"),
    ("ln", "f", "nx/"), ("ln", "f/", "x"), ("ln", "f", "d/"), ("ln -s", "t", "nx/"),
]


def _local_tree(root: str) -> set[tuple[str, bool]]:
    return {(os.path.relpath(os.path.join(at, name), root), name in dirs)
            for at, dirs, files in os.walk(root) for name in dirs + files}


def _served_tree(client, path: str) -> set[tuple[str, bool]]:
    found = set()
    for e in client.readdir(client.resolve(path).ino):
        name, is_dir = os.fsdecode(e.name), e.type == FileType.DIRECTORY
        found.add((name, is_dir))
        if is_dir:
            found |= {(f"{name}/{sub}", d) for sub, d in _served_tree(client, f"{path}/{name}")}
    return found


@pytest.mark.parametrize("case", TRAILING_SLASH_CASES, ids=" ".join)
def test_trailing_slash_as_the_local_kernel(metactl, client, top, tmp_path, case):
    """A trailing `/` (or `/.`) names a directory: each command fails with the errno the
    local kernel gives the same calls (`stat f/` is ENOTDIR), and leaves the same tree."""
    command, *paths = case
    local = tmp_path / "local"
    local.mkdir()
    (local / "f").touch()
    (local / "d").mkdir()
    client.create(client.resolve(top).ino, "f")
    client.mkdir(client.resolve(top).ino, "d")
    args = [paths[0] if command == "ln -s" else f"{local}/{paths[0]}"] + \
           [f"{local}/{p}" for p in paths[1:]]   # not `local / p`: pathlib drops a trailing /
    try:
        KERNEL[command](*args)
        expected = None
    except OSError as exc:
        expected = os.strerror(exc.errno)
    served = [paths[0] if command == "ln -s" else f"{top}/{paths[0]}"] + \
             [f"{top}/{p}" for p in paths[1:]]
    result = metactl(*command.split(), *served)
    if expected is None:
        ok(result)
    else:
        assert failed(result).endswith(f": {expected}")
    assert _served_tree(client, top) == _local_tree(str(local))
