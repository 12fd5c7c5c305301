"""The client library against a real in-process server: every call, errno mapping,
paged readdir, batches, request ids and retries, an unreachable server."""

from __future__ import annotations

import errno
import itertools
import os

import grpc
import pytest

from metaserver.client import Client, RetryPolicy
from metaserver.service.config import ServerConfig
from metaserver.service.server import start
from metaserver.types import (ROOT_INO, Attr, CompactResult, DirPage, Entry, FileType,
                              RenameFlags, Slice, StatFs, XattrFlags)

from conftest import format_url, free_port

FAST_RETRY = RetryPolicy(attempts=3, total_seconds=5, initial_backoff=0.001, max_backoff=0.01)


_dirs = itertools.count()


@pytest.fixture
def home(client) -> int:
    """A fresh directory per test, so tests sharing the server never meet."""
    return client.mkdir(ROOT_INO, f"t{next(_dirs)}").ino


class Injector(grpc.UnaryUnaryClientInterceptor):
    """Sees every call; `fail(method, request, attempt)` may return a status code to
    fail that attempt with, after (`forward=True`) or instead of reaching the server."""

    def __init__(self, fail=lambda method, request, attempt: None, forward=False):
        self.fail, self.forward = fail, forward
        self.calls: list[tuple[str, object]] = []

    def intercept_unary_unary(self, continuation, details, request):
        method = details.method.rsplit("/", 1)[-1]
        self.calls.append((method, request))
        attempt = sum(1 for m, _ in self.calls if m == method)
        code = self.fail(method, request, attempt)
        if code is None:
            return continuation(details, request)
        if self.forward:
            continuation(details, request).result()
        raise InjectedError(code)

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


class InjectedError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "injected failure"

    def trailing_metadata(self):
        return ()


def test_create_kinds_and_read_them_back(client, home):
    d = client.mkdir(home, "dir", mode=0o700, uid=5, gid=6)
    f = client.create(home, b"file", mode=0o600)
    fifo = client.mknod(home, "fifo", FileType.FIFO, 0o644)
    dev = client.mknod(home, "dev", FileType.CHAR_DEVICE, 0o600, rdev=0x0101)
    ln = client.symlink(home, "ln", "dir/target")
    assert isinstance(d, Entry) and isinstance(d.attr, Attr)
    assert (d.type, d.attr.mode, d.attr.uid, d.attr.gid, d.attr.nlink) == \
        (FileType.DIRECTORY, 0o700, 5, 6, 2)
    assert (f.name, f.type, f.attr.mode, f.attr.parent) == (b"file", FileType.REGULAR, 0o600, home)
    assert fifo.type == FileType.FIFO and dev.attr.rdev == 0x0101
    assert client.readlink(ln.ino) == b"dir/target"
    assert client.lookup(home, "file").ino == f.ino
    assert client.lookup(d.ino, "..").ino == home
    assert client.lookup(home, ".").ino == home
    assert client.getattr(f.ino) == f.attr
    assert client.resolve("/").ino == client.lookup(ROOT_INO, "..").ino == ROOT_INO


def test_names_may_be_str_or_any_bytes(client, home):
    raw = b"caf\xe9-not-utf8"
    client.create(home, raw)
    client.create(home, "café")
    assert {e.name for e in client.readdir(home)} == {raw, "café".encode()}
    assert client.lookup(home, os.fsdecode(raw)).name == raw


def test_setattr_sets_only_what_is_given(client, home):
    f = client.create(home, "f")
    a = client.setattr(f.ino, mode=0o640, uid=7, gid=8, size=4096,
                       atime_ns=1_000, mtime_ns=2_000, ctime_ns=3_000)
    assert (a.mode, a.uid, a.gid, a.size, a.atime_ns, a.mtime_ns, a.ctime_ns) == \
        (0o640, 7, 8, 4096, 1_000, 2_000, 3_000)
    b = client.setattr(f.ino, uid=9)
    assert (b.mode, b.uid, b.gid, b.size, b.atime_ns, b.mtime_ns) == (0o640, 9, 8, 4096, 1_000, 2_000)
    c = client.setattr(f.ino, atime_now=True, mtime_now=True)
    assert c.atime_ns > 1_000 and c.mtime_ns > 2_000 and c.uid == 9


def test_link_unlink_rmdir_rename(client, home):
    f = client.create(home, "f")
    d = client.mkdir(home, "d")
    linked = client.link(f.ino, d.ino, "again")
    assert linked.ino == f.ino and client.getattr(f.ino).nlink == 2
    client.unlink(home, "f")
    assert client.getattr(f.ino).nlink == 1
    moved = client.rename(d.ino, "again", home, "back")
    assert moved.ino == f.ino and client.lookup(home, "back").ino == f.ino
    client.create(home, "other")
    with pytest.raises(FileExistsError):
        client.rename(home, "back", home, "other", RenameFlags.NOREPLACE)
    client.rename(home, "back", home, "other", RenameFlags.EXCHANGE)
    assert client.lookup(home, "other").ino == f.ino
    client.rmdir(home, "d")
    with pytest.raises(FileNotFoundError):
        client.lookup(home, "d")


def test_xattrs(client, home):
    ino = client.create(home, "f").ino
    client.setxattr(ino, "user.a", b"1")
    client.setxattr(ino, b"user.b", "two")
    assert client.getxattr(ino, "user.b") == b"two"
    assert sorted(client.listxattr(ino)) == [b"user.a", b"user.b"]
    with pytest.raises(FileExistsError):
        client.setxattr(ino, "user.a", b"x", XattrFlags.CREATE)
    client.setxattr(ino, "user.a", b"3", XattrFlags.REPLACE)
    assert client.getxattr(ino, "user.a") == b"3"
    client.removexattr(ino, "user.a")
    for call in (lambda: client.getxattr(ino, "user.a"),
                 lambda: client.removexattr(ino, "user.a"),
                 lambda: client.setxattr(ino, "user.a", b"", XattrFlags.REPLACE)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ENODATA


def test_statfs_echo_and_chunks(client, home):
    fs = client.statfs()
    assert isinstance(fs, StatFs) and fs.used_inodes >= 2 and fs.total_bytes > fs.used_bytes
    assert client.echo(b"ping\0") == b"ping\0"
    ino = client.create(home, "data").ino
    first = client.alloc_slice_ids(2)
    assert client.alloc_slice_ids(1) == first + 2
    a = client.write_slice(ino, 0, Slice(0, first, 100, 0, 100))
    assert a.size == 100
    client.write_slice(ino, 0, Slice(0, first + 1, 100, 0, 100))
    assert client.read_chunk(ino, 0) == [Slice(0, first, 100, 0, 100),
                                         Slice(0, first + 1, 100, 0, 100)]
    compacted = client.compact_chunk(ino, 0)
    assert compacted == CompactResult([Slice(0, first + 1, 100, 0, 100)], [first])
    assert client.read_chunk(ino, 1) == []


def test_resolve_and_makedirs(client, home):
    top = f"/t-md-{home}"
    leaf = client.makedirs(f"{top}/a/b/c")
    assert client.resolve(f"{top}/a/b/c").ino == leaf.ino
    assert client.resolve(os.fsencode(f"{top}/a/./b")).type == FileType.DIRECTORY
    assert client.makedirs(f"{top}/a/b/c", exist_ok=True).ino == leaf.ino
    with pytest.raises(FileExistsError):
        client.makedirs(f"{top}/a/b")
    client.create(leaf.ino, "file")
    with pytest.raises(NotADirectoryError):
        client.makedirs(f"{top}/a/b/c/file/deeper", exist_ok=True)
    with pytest.raises(FileNotFoundError):
        client.resolve(f"{top}/missing")


# (what to do given a dir with a file "f" and a non-empty directory "d", the
#  exception class, the errno)
ERROR_CASES = {
    "missing": (lambda c, h: c.lookup(h, "nope"), FileNotFoundError, errno.ENOENT),
    "exists": (lambda c, h: c.mkdir(h, "f"), FileExistsError, errno.EEXIST),
    "under a file": (lambda c, h: c.create(c.lookup(h, "f").ino, "x"),
                     NotADirectoryError, errno.ENOTDIR),
    "rmdir a file": (lambda c, h: c.rmdir(h, "f"), NotADirectoryError, errno.ENOTDIR),
    "unlink a dir": (lambda c, h: c.unlink(h, "d"), IsADirectoryError, errno.EISDIR),
    "not empty": (lambda c, h: c.rmdir(h, "d"), OSError, errno.ENOTEMPTY),
    "bad name": (lambda c, h: c.create(h, "a/b"), OSError, errno.EINVAL),
    "long name": (lambda c, h: c.create(h, "x" * 300), OSError, errno.ENAMETOOLONG),
    "not a link": (lambda c, h: c.readlink(h), OSError, errno.EINVAL),
    "relative path": (lambda c, h: c.resolve("a/b"), OSError, errno.EINVAL),
    "bad page size": (lambda c, h: c.readdir_page(h, limit=20000), OSError, errno.EINVAL),
    "negative size": (lambda c, h: c.setattr(c.lookup(h, "f").ino, size=-1),
                      OSError, errno.EINVAL),
    "link a dir": (lambda c, h: c.link(c.lookup(h, "d").ino, h, "d2"),
                   PermissionError, errno.EPERM),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_are_oserror_subclasses_with_errno(client, home, case):
    client.create(home, "f")
    client.create(client.mkdir(home, "d").ino, "inside")
    action, kind, code = ERROR_CASES[case]
    with pytest.raises(kind) as info:
        action(client, home)
    assert info.value.errno == code
    assert info.value.strerror  # the server's message, or the client's for client checks


def test_error_carries_server_message_and_name(client, home):
    with pytest.raises(FileNotFoundError) as info:
        client.lookup(home, "ghost")
    assert info.value.filename == "ghost"
    assert "ghost" in info.value.strerror  # the server's words, not just strerror(ENOENT)


def test_readdir_streams_every_entry_once_in_order(server, home):
    injector = Injector()
    with Client(server.address, interceptors=[injector]) as c:
        batch = c.batch()
        for i in range(2500):
            batch.create(home, f"n{i:05d}")
        assert all(isinstance(r, Entry) for r in batch.run())
        entries = c.readdir(home, page_size=100)
        first = next(entries)
        assert injector.count("ReadDir") == 1  # lazy: one page fetched so far
        names = [first.name] + [e.name for e in entries]
        assert injector.count("ReadDir") in (25, 26)
    assert len(names) == 2500 and len(set(names)) == 2500
    assert names == sorted(names) == [f"n{i:05d}".encode() for i in range(2500)]


def test_readdir_page_and_attrs(client, home):
    for name in ("b", "a", "c"):
        client.create(home, name)
    page = client.readdir_page(home, limit=2, with_attrs=True)
    assert isinstance(page, DirPage)
    assert [e.name for e in page.entries] == [b"a", b"b"] and page.cursor == b"b"
    assert all(e.attr is not None and e.attr.ino == e.ino for e in page.entries)
    rest = client.readdir_page(home, page.cursor, 2)
    assert [e.name for e in rest.entries] == [b"c"] and rest.cursor == b""
    assert rest.entries[0].attr is None


def test_independent_batch_reports_each_result(client, home):
    results = (client.batch()
               .mkdir(home, "a")
               .mkdir(home, "a")
               .create(home, "b")
               .lookup(home, "a")
               .getattr(home)
               .run())
    assert [type(r) for r in results] == [Entry, FileExistsError, Entry, Entry, Attr]
    assert results[1].batch_index == 1 and results[1].filename == "a"
    assert results[3].ino == results[0].ino


def test_atomic_batch_is_all_or_nothing(client, home):
    client.create(home, "taken")
    batch = client.batch(atomic=True).mkdir(home, "x").create(home, "y").mkdir(home, "taken")
    assert len(batch) == 3
    with pytest.raises(FileExistsError) as info:
        batch.run()
    assert info.value.batch_index == 2 and info.value.filename == "taken"
    assert [e.name for e in client.readdir(home)] == [b"taken"]
    x, y, looked = client.batch(atomic=True).mkdir(home, "x").create(home, "y") \
        .lookup(home, "x").run()
    assert looked.ino == x.ino and y.type == FileType.REGULAR
    assert client.batch(atomic=True).run() == []


def test_same_request_id_replays_the_first_result(client, home):
    rid = b"fixed-request-id"
    first = client.call("mkdir", request_id=rid, parent=home, name=b"once", mode=0o755)
    again = client.call("mkdir", request_id=rid, parent=home, name=b"once", mode=0o755)
    assert again.ino == first.ino
    with pytest.raises(FileExistsError):
        client.call("mkdir", parent=home, name=b"once")


def test_request_ids_are_client_id_and_counter(client):
    ids = [client.new_request_id() for _ in range(3)]
    assert len({i[:8] for i in ids}) == 1 and all(len(i) == 16 for i in ids)
    counters = [int.from_bytes(i[8:], "big") for i in ids]
    assert counters == [counters[0], counters[0] + 1, counters[0] + 2]


def test_lost_reply_is_retried_with_the_same_request_id(server, home):
    # The first Mkdir reaches the server, then its reply is "lost".
    injector = Injector(lambda method, _req, attempt: grpc.StatusCode.UNAVAILABLE
                        if method == "Mkdir" and attempt == 1 else None, forward=True)
    with Client(server.address, retry=FAST_RETRY, interceptors=[injector]) as c:
        made = c.mkdir(home, "retried")
        sent = [req.request_id for method, req in injector.calls if method == "Mkdir"]
        assert len(sent) == 2 and sent[0] == sent[1]
        assert [e.ino for e in c.readdir(home)] == [made.ino]


@pytest.mark.parametrize("code, mutation_attempts, read_attempts, error", [
    (grpc.StatusCode.UNAVAILABLE, 3, 3, errno.EIO),
    (grpc.StatusCode.ABORTED, 3, 3, errno.EAGAIN),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 3, 1, errno.ETIMEDOUT),
    (grpc.StatusCode.INTERNAL, 1, 1, errno.EIO),
])
def test_which_failures_are_retried(server, home, code, mutation_attempts, read_attempts,
                                    error):
    injector = Injector(lambda _method, _req, _attempt: code)
    with Client(server.address, retry=FAST_RETRY, interceptors=[injector]) as c:
        for call, method, attempts in ((lambda: c.mkdir(home, "x"), "Mkdir", mutation_attempts),
                                       (lambda: c.getattr(home), "GetAttr", read_attempts)):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == error and injector.count(method) == attempts
            assert info.value.filename == server.address  # no server errno: the server is named


def test_unreachable_server_fails_with_oserror():
    address = f"127.0.0.1:{free_port()}"   # nobody listens there
    with Client(address, timeout=5) as c:
        for call in (lambda: c.getattr(ROOT_INO), lambda: c.mkdir(ROOT_INO, "x")):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno in (errno.ECONNREFUSED, errno.EIO)
            assert info.value.filename == address


def test_rocksdb_server_keeps_the_namespace(tmp_path):
    config = ServerConfig(meta_url=format_url(f"rocksdb://{tmp_path}/db"), listen="127.0.0.1:0")
    srv = start(config)
    try:
        with Client(srv.address) as c:
            d = c.makedirs("/keep/me")
            c.create(d.ino, "file")
            c.setxattr(d.ino, "user.k", b"v")
    finally:
        srv.stop()
    srv = start(config)
    try:
        with Client(srv.address) as c:
            d = c.resolve("/keep/me")
            assert [e.name for e in c.readdir(d.ino)] == [b"file"]
            assert c.getxattr(d.ino, "user.k") == b"v"
            with pytest.raises(FileExistsError):
                c.mkdir(c.resolve("/keep").ino, "me")
    finally:
        srv.stop()


def test_the_client_table_read_off_the_descriptors_agrees_with_the_server():
    """Every operation the server runs has a client call on the same RPC, retried as a
    mutation exactly when the server's operation mutates (its request carries an id)."""
    from metaserver.client.wire import CALLS
    from metaserver.ops import OPS
    from metaserver.service.codec import OPERATIONS
    assert set(CALLS) == set(OPERATIONS)
    for name, call in CALLS.items():
        assert call.rpc == OPERATIONS[name].rpc and call.request is OPERATIONS[name].request
        assert call.mutating == OPS[OPERATIONS[name].op].mutating, name
