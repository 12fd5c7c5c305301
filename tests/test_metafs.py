"""metafs, the reference FUSE client, mounted for real (FUSE as root) over metaservers
started on loopback: real tools on the mount (cp -a, tar, diff -r, git), two mounts of
one namespace (renames, flock and POSIX locks), open-unlinked files held by the server,
a killed mount's session ending, a read-only mount of a follower, a server restart
under a live mount. Every mount is unmounted in teardown. The sessions and locks of
the API are also tested directly, without FUSE."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import subprocess
import threading
import time

import pytest

from metaserver.client import Client
from metaserver.fsck import fsck
from metaserver.service import ServerConfig, start
from metaserver.types import ROOT_INO
from metaserver.testing.metafs_mount import METAFS, MetafsMount, fuse_missing
from metaserver.testing.metaserver_process import ServerProcess, format_store, wait_for

needs_fuse = pytest.mark.skipif(fuse_missing() is not None, reason=fuse_missing() or "")

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "metaserver")
NO_CACHE = ("--attr-timeout", "0", "--entry-timeout", "0")
FILES_IN_FLIGHT = 200


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


@needs_fuse
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
        assert not {"cp", "tar"} & set(os.listdir(b.mountpoint))


@needs_fuse
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


@needs_fuse
def test_own_renames_and_rmdirs_are_seen_at_once_with_caches_on(primary, tmp_path, data_dir):
    """The mount's name cache (directory inodes by path) forgets what it renames or
    removes: a new directory under an old name is a new directory."""
    with mount(primary.address, tmp_path, "a", data_dir) as a:
        root = f"{a.mountpoint}/cached"
        os.makedirs(f"{root}/d/sub")
        open(f"{root}/d/sub/one", "w").close()
        os.rename(f"{root}/d", f"{root}/e")
        os.makedirs(f"{root}/d/sub")
        open(f"{root}/d/sub/two", "w").close()
        assert os.listdir(f"{root}/e/sub") == ["one"]
        assert os.listdir(f"{root}/d/sub") == ["two"]
        shutil.rmtree(f"{root}/d")
        os.makedirs(f"{root}/d/sub")
        assert os.listdir(f"{root}/d/sub") == []
        # Both names of a hard link show the file's own attributes at once.
        open(f"{root}/n0", "w").close()
        os.link(f"{root}/n0", f"{root}/n1")
        assert os.stat(f"{root}/n0").st_nlink == 2
        with open(f"{root}/n1", "w") as f:
            f.write("through n1")
        assert os.stat(f"{root}/n0").st_size == len("through n1")
        os.unlink(f"{root}/n1")
        assert os.stat(f"{root}/n0").st_nlink == 1
        shutil.rmtree(root)


@needs_fuse
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


@needs_fuse
def test_open_unlinked_file_is_held_by_the_server_until_last_close(primary, tmp_path,
                                                                  data_dir):
    with mount(primary.address, tmp_path, "a", data_dir) as a, \
            mount(primary.address, tmp_path, "b", data_dir, *NO_CACHE) as b, \
            Client(primary.address) as api:
        path = f"{a.mountpoint}/doomed"
        with open(path, "wb") as f:
            f.write(b"still here")
        fd = os.open(path, os.O_RDWR)
        try:
            ino = os.fstat(fd).st_ino
            os.unlink(path)
            assert not os.path.exists(path)
            assert "doomed" not in os.listdir(b.mountpoint)
            assert os.fstat(fd).st_nlink == 0
            assert os.pread(fd, 100, 0) == b"still here"
            os.pwrite(fd, b"STILL", 0)
            assert os.pread(fd, 100, 0) == b"STILL here"
            assert api.getattr(ino).nlink == 0       # the server keeps the inode
        finally:
            os.close(fd)

        def gone() -> bool:
            try:
                api.getattr(ino)
            except FileNotFoundError:
                return True
            return False
        wait_for(gone, what="the inode freed at the last close")
        # Renaming over an open file holds it the same way.
        with open(f"{a.mountpoint}/old", "w") as f:
            f.write("old")
        with open(f"{a.mountpoint}/new", "w") as f:
            f.write("new")
        with open(f"{a.mountpoint}/old") as kept:
            os.rename(f"{a.mountpoint}/new", f"{a.mountpoint}/old")
            assert kept.read() == "old"
        with open(f"{a.mountpoint}/old") as f:
            assert f.read() == "new"
        os.unlink(f"{a.mountpoint}/old")


def try_flock(path: str, how: int) -> bool:
    with open(path) as f:
        try:
            fcntl.flock(f, how | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


@needs_fuse
def test_flock_contention_between_two_mounts(primary, tmp_path, data_dir):
    with mount(primary.address, tmp_path, "a", data_dir) as a, \
            mount(primary.address, tmp_path, "b", data_dir) as b:
        open(f"{a.mountpoint}/lock", "w").close()
        holder = open(f"{a.mountpoint}/lock")
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert not try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_EX)
        assert not try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_SH)
        assert not try_flock(f"{a.mountpoint}/lock", fcntl.LOCK_SH)   # another open file
        # A blocking flock on the other mount waits for the holder's unlock.
        got = threading.Event()
        waiter_file = open(f"{b.mountpoint}/lock")

        def waiter() -> None:
            fcntl.flock(waiter_file, fcntl.LOCK_EX)
            got.set()
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not got.wait(0.5)
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert got.wait(10)
        thread.join(10)
        assert not try_flock(f"{a.mountpoint}/lock", fcntl.LOCK_EX)
        # Closing the file drops its flock (the kernel sends that with the release,
        # after close() returns).
        waiter_file.close()
        wait_for(lambda: try_flock(f"{a.mountpoint}/lock", fcntl.LOCK_EX),
                 what="the flock dropped at close")
        # Shared locks share.
        fcntl.flock(holder, fcntl.LOCK_SH)
        assert try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_SH)
        assert not try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_EX)
        holder.close()
        os.unlink(f"{a.mountpoint}/lock")


def getlk(f, start: int, length: int) -> tuple[int, int, int]:
    """fcntl(F_GETLK) for a write lock on [start, start+length): (type, start, len)."""
    request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    type_, _, lock_start, lock_len, _ = struct.unpack(
        "hhqqi", fcntl.fcntl(f, fcntl.F_GETLK, request))
    return type_, lock_start, lock_len


@needs_fuse
def test_posix_byte_range_locks_between_two_mounts(primary, tmp_path, data_dir):
    with mount(primary.address, tmp_path, "a", data_dir) as a, \
            mount(primary.address, tmp_path, "b", data_dir) as b:
        open(f"{a.mountpoint}/ranges", "w").close()
        fa = open(f"{a.mountpoint}/ranges", "r+")
        fb = open(f"{b.mountpoint}/ranges", "r+")
        fcntl.lockf(fa, fcntl.LOCK_EX, 10, 0)          # bytes 0..9
        with pytest.raises(OSError) as refused:
            fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 5)
        assert refused.value.errno in (errno.EAGAIN, errno.EACCES)
        fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)     # disjoint: fine
        assert getlk(fb, 0, 5) == (fcntl.F_WRLCK, 0, 10)
        assert getlk(fb, 15, 1)[0] == fcntl.F_UNLCK     # its own lock is no conflict
        fcntl.lockf(fa, fcntl.LOCK_UN, 5, 0)             # keep 5..9 only
        fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 0)
        assert getlk(fb, 0, 100) == (fcntl.F_WRLCK, 5, 5)
        fa.close()                                       # POSIX locks go with a close
        wait_for(lambda: getlk(fb, 0, 100)[0] == fcntl.F_UNLCK,
                 what="the POSIX locks dropped at close")
        fb.close()
        os.unlink(f"{a.mountpoint}/ranges")


@needs_fuse
def test_a_killed_mounts_locks_and_held_inodes_end_with_its_session(tmp_path, data_dir):
    """kill -9 a mount: once its session's lease runs out its locks stop counting,
    and the server's maintenance frees the open-unlinked inode it held."""
    server = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                maintenance_interval_s=0.2))
    try:
        with mount(server.address, tmp_path, "a", data_dir, "--session-ttl", "1") as a, \
                mount(server.address, tmp_path, "b", data_dir) as b, \
                Client(server.address) as api:
            open(f"{a.mountpoint}/lock", "w").close()
            locked = open(f"{a.mountpoint}/lock")
            fcntl.flock(locked, fcntl.LOCK_EX)
            held = open(f"{a.mountpoint}/held", "w")
            ino = os.fstat(held.fileno()).st_ino
            os.unlink(f"{a.mountpoint}/held")
            assert not try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_EX)
            a.kill()
            wait_for(lambda: try_flock(f"{b.mountpoint}/lock", fcntl.LOCK_EX),
                     timeout=15, what="the dead mount's lock lapsed")

            def freed() -> bool:
                try:
                    api.getattr(ino)
                except FileNotFoundError:
                    return True
                return False
            wait_for(freed, timeout=15, what="the dead mount's held inode freed")
            for f in (locked, held):
                try:
                    f.close()
                except OSError:
                    pass        # the dead mount answers ENOTCONN
    finally:
        server.stop()


@needs_fuse
def test_mounts_of_a_follower_read_only_or_forwarding(primary, tmp_path, data_dir):
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
            # Without --read-only, writes on a follower's mount are forwarded.
            with mount(follower.address, tmp_path, "fw", data_dir, *NO_CACHE) as fw:
                with open(f"{fw.mountpoint}/shared/forwarded", "w") as f:
                    f.write("via the follower")
                with open(f"{rw.mountpoint}/shared/forwarded") as f:
                    assert f.read() == "via the follower"
            shutil.rmtree(f"{rw.mountpoint}/shared")
    finally:
        follower.stop()


@needs_fuse
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
        assert "lost" not in os.listdir(a.mountpoint)


@needs_fuse
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
            # kill -9 while creates and writes are in flight: each is retried with its
            # request id, so none fails (no EEXIST from a create that had committed)
            # and none is applied twice.
            os.mkdir(f"{a.mountpoint}/busy")
            errors: list[OSError] = []

            def writer() -> None:
                for i in range(FILES_IN_FLIGHT):
                    try:
                        with open(f"{a.mountpoint}/busy/f{i}", "w") as f:
                            f.write(str(i))
                    except OSError as exc:
                        errors.append(exc)
            busy = threading.Thread(target=writer)
            busy.start()
            time.sleep(0.3)
            assert busy.is_alive()          # the kill lands among the writer's calls
            server.kill()
            server.start()
            busy.join(120)
            assert not busy.is_alive() and errors == []
            for i in range(FILES_IN_FLIGHT):
                with open(f"{a.mountpoint}/busy/f{i}") as f:
                    assert f.read() == str(i)
    finally:
        server.stop()


@needs_fuse
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


def test_sessions_holds_and_locks_through_the_api(server):
    """The API that metafs relies on, without FUSE: leases, holds, both lock kinds."""
    with Client(server.address) as api:
        one, two = os.urandom(16), os.urandom(16)
        for session in (one, two):
            api.renew_session(session, 30_000)
        f = api.create(ROOT_INO, "api-locks")
        api.set_lock(one, f.ino, 1, fcntl.F_WRLCK, flock=True)
        with pytest.raises(PermissionError):
            api.set_lock(two, f.ino, 1, fcntl.F_RDLCK, flock=True)
        api.set_lock(two, f.ino, 1, fcntl.F_WRLCK, 0, 100)     # POSIX: another kind
        assert api.get_lock(one, f.ino, 7, fcntl.F_RDLCK, 50, 51) == (fcntl.F_WRLCK, 0, 100, 0)
        api.set_lock(two, f.ino, 1, fcntl.F_UNLCK, 20, 30)     # split in two
        assert api.get_lock(one, f.ino, 7, fcntl.F_RDLCK, 25, 26)[0] == fcntl.F_UNLCK
        assert api.get_lock(one, f.ino, 7, fcntl.F_RDLCK, 30, 0)[1:3] == (30, 100)
        with pytest.raises(OSError) as bad:
            api.set_lock(one, f.ino, 1, 7)
        assert bad.value.errno == errno.EINVAL
        with pytest.raises(OSError) as unknown:
            api.set_lock(os.urandom(16), f.ino, 1, fcntl.F_WRLCK)
        assert unknown.value.errno == errno.ENOLCK
        # A hold keeps the inode past its last name; closing the session frees it.
        api.hold_inode(one, f.ino)
        api.unlink(ROOT_INO, "api-locks")
        assert api.getattr(f.ino).nlink == 0
        report = fsck(server.engine)     # a held inode with locks is no orphan
        assert report.ok, report
        api.close_session(one)
        with pytest.raises(FileNotFoundError):
            api.getattr(f.ino)
        api.close_session(two)
