"""metafs, the reference FUSE client, mounted for real (FUSE as root) over metaservers
started on loopback: real tools on the mount (cp -a, tar, diff -r, git), two mounts of
one namespace, open-unlinked files, a read-only mount of a follower, a server restart
under a live mount. Every mount is unmounted in teardown."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading

import pytest

from metaserver.service import ServerConfig, start
from metaserver.testing.metafs_mount import METAFS, MetafsMount, fuse_missing
from metaserver.testing.metaserver_process import ServerProcess, format_store, wait_for

pytestmark = pytest.mark.skipif(fuse_missing() is not None, reason=fuse_missing() or "")

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "metaserver")
NO_CACHE = ("--attr-timeout", "0", "--entry-timeout", "0")


@pytest.fixture(scope="module")
def primary(tmp_path_factory):
    root = tmp_path_factory.mktemp("metafs-server")
    server = ServerProcess(format_store(f"rocksdb://{root}/db"),
                           log_path=str(root / "server.log")).start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def mount(server: str, tmp_path, name: str, data_dir: str, *flags: str) -> MetafsMount:
    return MetafsMount(server, str(tmp_path / name), data_dir, *flags,
                       log_path=str(tmp_path / f"{name}.log"))


@pytest.fixture
def tree(tmp_path):
    """A tree of real files to copy in: this package's sources (no caches), with a
    symlink, a hard link, an empty directory, a 3 MiB file and a file with a hole."""
    root = tmp_path / "tree"
    shutil.copytree(SOURCE, root, ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink("types.py", root / "link-to-types")
    os.link(root / "types.py", root / "hard-link-to-types")
    (root / "empty").mkdir()
    (root / "big").write_bytes(os.urandom(3 << 20))
    with open(root / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
    return root


def diff(a, b) -> None:
    done = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_tree_copied_in_with_cp_and_tar_and_seen_by_a_second_mount(primary, tmp_path,
                                                                    data_dir, tree):
    with mount(primary.address, tmp_path, "a", data_dir) as a, \
            mount(primary.address, tmp_path, "b", data_dir) as b:
        subprocess.run(["cp", "-a", str(tree), f"{a.mountpoint}/cp"], check=True)
        diff(tree, f"{a.mountpoint}/cp")
        archive = tmp_path / "tree.tar"
        subprocess.run(["tar", "cf", str(archive), "-C", str(tree), "."], check=True)
        os.mkdir(f"{a.mountpoint}/tar")
        subprocess.run(["tar", "xf", str(archive), "-C", f"{a.mountpoint}/tar"], check=True)
        diff(tree, f"{a.mountpoint}/tar")
        # The other mount sees the same names, attributes and bytes.
        diff(tree, f"{b.mountpoint}/tar")
        st, copy = os.lstat(tree / "types.py"), os.lstat(f"{b.mountpoint}/cp/types.py")
        assert (copy.st_mode, copy.st_size, copy.st_mtime_ns) == \
            (st.st_mode, st.st_size, st.st_mtime_ns)
        assert copy.st_nlink == 2
        assert os.statvfs(a.mountpoint).f_files > 0
        shutil.rmtree(f"{a.mountpoint}/cp")
        shutil.rmtree(f"{a.mountpoint}/tar")
        assert os.listdir(b.mountpoint) == []


def test_git_init_add_commit_on_the_mount(primary, tmp_path, data_dir, tree):
    git = ["git", "-c", "user.name=metafs", "-c", "user.email=metafs@localhost",
           "-c", "init.defaultBranch=main"]
    with mount(primary.address, tmp_path, "a", data_dir) as a:
        repo = f"{a.mountpoint}/repo"
        shutil.copytree(tree, repo, symlinks=True)
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
            subprocess.run(git + args, cwd=repo, check=True)
        os.rename(f"{repo}/types.py", f"{repo}/types2.py")
        subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
        subprocess.run(git + ["commit", "-q", "-m", "second"], cwd=repo, check=True)
        log = subprocess.run(git + ["log", "--oneline"], cwd=repo, check=True,
                             capture_output=True, text=True).stdout.splitlines()
        assert len(log) == 2
        fsck = subprocess.run(git + ["fsck", "--strict"], cwd=repo, capture_output=True,
                              text=True)
        assert fsck.returncode == 0, fsck.stderr
        status = subprocess.run(git + ["status", "--porcelain"], cwd=repo, check=True,
                                capture_output=True, text=True).stdout
        assert status == ""
        shutil.rmtree(repo)


def test_concurrent_renames_from_two_mounts(primary, tmp_path, data_dir):
    """Two mounts race to rename the same files: each file moves exactly once."""
    count = 60
    with mount(primary.address, tmp_path, "a", data_dir, *NO_CACHE) as a, \
            mount(primary.address, tmp_path, "b", data_dir, *NO_CACHE) as b:
        os.mkdir(f"{a.mountpoint}/race")
        for i in range(count):
            with open(f"{a.mountpoint}/race/x{i}", "w") as f:
                f.write(str(i))
        won: dict[str, list[int]] = {"a": [], "b": []}

        def renamer(m: MetafsMount, tag: str) -> None:
            for i in range(count):
                try:
                    os.rename(f"{m.mountpoint}/race/x{i}", f"{m.mountpoint}/race/{tag}{i}")
                    won[tag].append(i)
                except FileNotFoundError:
                    pass
        threads = [threading.Thread(target=renamer, args=(m, tag)) for m, tag in
                   ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(won["a"] + won["b"]) == list(range(count))
        names = sorted(os.listdir(f"{b.mountpoint}/race"))
        assert names == sorted([f"a{i}" for i in won["a"]] + [f"b{i}" for i in won["b"]])
        for i in won["b"]:
            with open(f"{a.mountpoint}/race/b{i}") as f:
                assert f.read() == str(i)
        shutil.rmtree(f"{a.mountpoint}/race")


def test_open_unlinked_file_is_readable_until_last_close(primary, tmp_path, data_dir):
    with mount(primary.address, tmp_path, "a", data_dir) as a:
        path = f"{a.mountpoint}/doomed"
        with open(path, "wb") as f:
            f.write(b"still here")
        fd = os.open(path, os.O_RDWR)
        try:
            os.unlink(path)
            assert not os.path.exists(path)
            assert os.pread(fd, 100, 0) == b"still here"
            os.pwrite(fd, b"STILL", 0)
            assert os.pread(fd, 100, 0) == b"STILL here"
        finally:
            os.close(fd)
        wait_for(lambda: os.listdir(a.mountpoint) == [], what="hidden file removed on close")


def test_read_only_mount_of_a_follower(primary, tmp_path, data_dir):
    follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                  follow=primary.address))
    try:
        with mount(primary.address, tmp_path, "rw", data_dir) as rw:
            os.makedirs(f"{rw.mountpoint}/shared", exist_ok=True)
            with open(f"{rw.mountpoint}/shared/note", "w") as f:
                f.write("from the primary")
            with mount(follower.address, tmp_path, "ro", data_dir, "--read-only",
                       *NO_CACHE) as ro:
                note = f"{ro.mountpoint}/shared/note"
                wait_for(lambda: os.path.exists(note), what="the follower applies the file")
                with open(note) as f:
                    assert f.read() == "from the primary"
                with pytest.raises(OSError) as refused:
                    open(f"{ro.mountpoint}/shared/new", "w")
                assert refused.value.errno == errno.EROFS
                with pytest.raises(OSError) as refused:
                    os.unlink(note)
                assert refused.value.errno == errno.EROFS
            shutil.rmtree(f"{rw.mountpoint}/shared")
    finally:
        follower.stop()


def test_a_failing_handler_is_eio_and_the_mount_lives_on(primary, tmp_path, data_dir):
    with mount(primary.address, tmp_path, "a", data_dir) as a:
        with open(f"{a.mountpoint}/lost", "wb") as f:
            f.write(b"data")
        shutil.rmtree(os.path.join(data_dir, "objects"))    # the data is gone
        with pytest.raises(OSError) as failed:
            with open(f"{a.mountpoint}/lost", "rb") as f:
                f.read()
        assert failed.value.errno == errno.EIO
        os.unlink(f"{a.mountpoint}/lost")
        assert os.listdir(a.mountpoint) == []


def test_reconnects_after_a_server_restart(tmp_path, data_dir):
    """Calls made while the server is down wait for it (retried with their request
    ids) and succeed once it is back; the mount never goes away."""
    server = ServerProcess(format_store(f"rocksdb://{tmp_path}/db"),
                           log_path=str(tmp_path / "server.log")).start()
    try:
        with mount(server.address, tmp_path, "a", data_dir, *NO_CACHE) as a:
            with open(f"{a.mountpoint}/before", "w") as f:
                f.write("1")
            server.stop()
            results: dict[str, object] = {}

            def while_down() -> None:
                try:
                    os.mkdir(f"{a.mountpoint}/during")
                    with open(f"{a.mountpoint}/before") as f:
                        results["read"] = f.read()
                except OSError as exc:
                    results["error"] = exc
            caller = threading.Thread(target=while_down)
            caller.start()
            caller.join(1.0)
            assert caller.is_alive()        # waiting for the server, not failing
            server.start()
            caller.join(60)
            assert results == {"read": "1"}
            assert sorted(os.listdir(a.mountpoint)) == ["before", "during"]
    finally:
        server.stop()


def test_background_mount_and_umount_commands(primary, tmp_path, data_dir):
    mountpoint = tmp_path / "bg"
    mountpoint.mkdir()
    done = subprocess.run([METAFS, "mount", "--server", primary.address, "--data-dir",
                           data_dir, str(mountpoint)], capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mountpoint)
        (mountpoint / "f").write_text("x")
        assert (mountpoint / "f").read_text() == "x"
        (mountpoint / "f").unlink()
    finally:
        umount = subprocess.run([METAFS, "umount", str(mountpoint)], capture_output=True,
                                text=True)
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)])
    assert umount.returncode == 0, umount.stderr
    refused = subprocess.run([METAFS, "mount", "--server", "127.0.0.1:1", "--data-dir",
                              data_dir, str(mountpoint)], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and "metafs:" in refused.stderr
    assert not os.path.ismount(mountpoint)
