"""The gRPC service end to end: a real server on 127.0.0.1 (port 0), the generated stub,
every RPC, error statuses with their errno trailers, malformed input, idempotency."""

from __future__ import annotations

import errno
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import formatted
from engines import open_engine
from metaserver.runner import Runner
from metaserver.service import BATCH_INDEX_KEY, ERRNO_KEY, ServerConfig, start
from metaserver.service.codec import OPERATIONS, SERVICE, to_domain, to_message
from metaserver.service.errors import status_code
from metaserver.service.maintenance import Maintenance
from metaserver.types import (ROOT_INO, Attr, CompactResult, DirPage, Entry, FileType, RenameFlags,
                              SetAttrMask, Slice, StatFs, XattrFlags)
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

TOTAL_BYTES = 1 << 40
TOTAL_INODES = 123_456
TIMEOUT = 10


@pytest.fixture(scope="module")
def server():
    running = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", workers=4,
                                 total_bytes=TOTAL_BYTES, total_inodes=TOTAL_INODES))
    yield running
    running.stop(grace=1)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return pb_grpc.MetadataStub(channel)


def rid() -> bytes:
    return uuid.uuid4().bytes


@pytest.fixture
def home(stub) -> int:
    """A fresh empty directory for one test."""
    return stub.Mkdir(pb.MkdirRequest(request_id=rid(), parent=ROOT_INO,
                                      name=uuid.uuid4().hex.encode(), mode=0o755),
                      timeout=TIMEOUT).ino


def create(stub, parent: int, name: bytes, request_id: bytes | None = None) -> pb.Entry:
    return stub.Create(pb.CreateRequest(request_id=request_id or rid(), parent=parent,
                                        name=name, mode=0o644), timeout=TIMEOUT)


def expect_error(call, code: grpc.StatusCode, err: int) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert (info.value.code(), trailers(info.value).get(ERRNO_KEY)) == (code, str(err)), \
        info.value.details()
    return info.value


def trailers(exc: grpc.RpcError) -> dict[str, str]:
    return dict(exc.trailing_metadata() or ())


def names_in(stub, ino: int) -> list[bytes]:
    return [e.name for e in stub.ReadDir(pb.ReadDirRequest(ino=ino), timeout=TIMEOUT).entries]


# --- every RPC ----------------------------------------------------------------------------

def test_every_rpc_of_the_proto_has_a_handler(stub, channel):
    """An empty request reaches our handler (success, or a status with an errno), never
    grpc's own UNIMPLEMENTED for an unknown method."""
    for method in SERVICE.methods:
        call = channel.unary_unary(f"/{SERVICE.full_name}/{method.name}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=lambda b: b)
        request = getattr(pb, method.input_type.name)()
        try:
            call(request, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            assert ERRNO_KEY in trailers(exc), (method.name, exc.code(), exc.details())


def test_namespace_rpcs(stub, home):
    f = create(stub, home, b"file")
    assert (f.name, f.type, f.attr.mode, f.attr.nlink, f.attr.parent) == \
        (b"file", pb.REGULAR, 0o644, 1, home)
    d = stub.Mkdir(pb.MkdirRequest(request_id=rid(), parent=home, name=b"dir", mode=0o700))
    assert (d.type, d.attr.mode, d.attr.nlink) == (pb.DIRECTORY, 0o700, 2)
    fifo = stub.Mknod(pb.MknodRequest(request_id=rid(), parent=home, name=b"fifo",
                                      type=pb.FIFO, mode=0o600, uid=7, gid=8))
    assert (fifo.type, fifo.attr.uid, fifo.attr.gid) == (pb.FIFO, 7, 8)
    dev = stub.Mknod(pb.MknodRequest(request_id=rid(), parent=home, name=b"dev",
                                     type=pb.CHAR_DEVICE, rdev=0x0501))
    assert dev.attr.rdev == 0x0501
    link = stub.Symlink(pb.SymlinkRequest(request_id=rid(), parent=home, name=b"sym",
                                          target=b"file"))
    assert stub.ReadLink(pb.ReadLinkRequest(ino=link.ino)).target == b"file"

    assert stub.Lookup(pb.LookupRequest(parent=home, name=b"file")).ino == f.ino
    assert stub.Lookup(pb.LookupRequest(parent=d.ino, name=b"..")).ino == home
    assert stub.Lookup(pb.LookupRequest(parent=home, name=b".")).ino == home
    assert stub.GetAttr(pb.GetAttrRequest(ino=f.ino)).ino == f.ino

    hard = stub.Link(pb.LinkRequest(request_id=rid(), ino=f.ino, parent=d.ino, name=b"hard"))
    assert (hard.ino, hard.attr.nlink) == (f.ino, 2)
    attr = stub.SetAttr(pb.SetAttrRequest(request_id=rid(), ino=f.ino,
                                          mask=SetAttrMask.MODE | SetAttrMask.SIZE,
                                          mode=0o600, size=4096))
    assert (attr.mode, attr.size) == (0o600, 4096)

    moved = stub.Rename(pb.RenameRequest(request_id=rid(), parent=home, name=b"fifo",
                                         new_parent=d.ino, new_name=b"pipe"))
    assert (moved.name, moved.ino) == (b"pipe", fifo.ino)
    swapped = stub.Rename(pb.RenameRequest(request_id=rid(), parent=home, name=b"sym",
                                           new_parent=home, new_name=b"dev",
                                           flags=RenameFlags.EXCHANGE))
    assert swapped.ino == link.ino
    assert stub.Resolve(pb.ResolveRequest(path=b"/%s/dir/pipe" % names_of_root_entry(stub, home))
                        ).ino == fifo.ino

    assert stub.Unlink(pb.UnlinkRequest(request_id=rid(), parent=d.ino, name=b"hard")) == pb.Empty()
    stub.Unlink(pb.UnlinkRequest(request_id=rid(), parent=d.ino, name=b"pipe"))
    assert stub.Rmdir(pb.RmdirRequest(request_id=rid(), parent=home, name=b"dir")) == pb.Empty()
    assert names_in(stub, home) == [b"dev", b"file", b"sym"]


def names_of_root_entry(stub, ino: int) -> bytes:
    (entry,) = [e for e in stub.ReadDir(pb.ReadDirRequest(ino=ROOT_INO, limit=10000)).entries
                if e.ino == ino]
    return entry.name


def test_readdir_pages_and_default_limit(stub, home):
    for name in (b"a", b"b", b"c"):
        create(stub, home, name)
    page = stub.ReadDir(pb.ReadDirRequest(ino=home, limit=0))   # 0 means the default, 1000
    assert ([e.name for e in page.entries], page.cursor) == ([b"a", b"b", b"c"], b"")
    assert not page.entries[0].HasField("attr")
    seen, cursor = [], b""
    while True:
        page = stub.ReadDir(pb.ReadDirRequest(ino=home, cursor=cursor, limit=2, with_attrs=True))
        seen += [(e.name, e.attr.ino == e.ino) for e in page.entries]
        cursor = page.cursor
        if not cursor:
            break
    assert seen == [(b"a", True), (b"b", True), (b"c", True)]


def test_xattr_rpcs(stub, home):
    ino = create(stub, home, b"x").ino
    stub.SetXattr(pb.SetXattrRequest(request_id=rid(), ino=ino, name=b"user.a", value=b"1"))
    stub.SetXattr(pb.SetXattrRequest(request_id=rid(), ino=ino, name=b"user.b", value=b""))
    assert stub.GetXattr(pb.GetXattrRequest(ino=ino, name=b"user.a")).value == b"1"
    assert list(stub.ListXattr(pb.ListXattrRequest(ino=ino)).names) == [b"user.a", b"user.b"]
    expect_error(lambda: stub.SetXattr(pb.SetXattrRequest(
        request_id=rid(), ino=ino, name=b"user.a", value=b"2", flags=XattrFlags.CREATE)),
        grpc.StatusCode.ALREADY_EXISTS, errno.EEXIST)
    stub.RemoveXattr(pb.RemoveXattrRequest(request_id=rid(), ino=ino, name=b"user.a"))
    assert list(stub.ListXattr(pb.ListXattrRequest(ino=ino)).names) == [b"user.b"]


def test_chunk_rpcs(stub, home):
    ino = create(stub, home, b"data").ino
    ids = stub.AllocSliceIds(pb.AllocSliceIdsRequest(request_id=rid(), count=2))
    assert ids.count == 2 and ids.first > 0
    for pos, sid in ((0, ids.first), (0, ids.first + 1)):
        attr = stub.WriteSlice(pb.WriteSliceRequest(
            request_id=rid(), ino=ino, index=0,
            slice=pb.Slice(pos=pos, id=sid, size=100, off=0, len=100)))
    assert attr.size == 100
    assert [s.id for s in stub.ReadChunk(pb.ReadChunkRequest(ino=ino, index=0)).slices] == \
        [ids.first, ids.first + 1]
    compacted = stub.CompactChunk(pb.CompactChunkRequest(request_id=rid(), ino=ino, index=0))
    assert ([s.id for s in compacted.slices], list(compacted.released)) == \
        ([ids.first + 1], [ids.first])


def test_statfs_reports_configured_totals(stub, home):
    reply = stub.StatFs(pb.StatFsRequest())
    assert (reply.total_bytes, reply.total_inodes) == (TOTAL_BYTES, TOTAL_INODES)
    assert reply.avail_inodes == TOTAL_INODES - reply.used_inodes and reply.used_inodes >= 2


def test_echo_returns_its_payload(stub):
    assert stub.Echo(pb.EchoRequest(payload=b"\0ping")).payload == b"\0ping"


def test_health_and_reflection(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE.full_name):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING


# --- batches ------------------------------------------------------------------------------

def op(field: str, **fields) -> pb.Operation:
    return pb.Operation(**{field: OPERATIONS[field].request(**fields)})


def test_independent_batch_reports_each_result(stub, home):
    reply = stub.Batch(pb.BatchRequest(ops=[
        op("create", request_id=rid(), parent=home, name=b"one"),
        op("unlink", request_id=rid(), parent=home, name=b"missing"),
        op("mkdir", request_id=rid(), parent=home, name=b"two"),
        op("getattr", ino=home),
        op("statfs"),
    ]))
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["entry", "error", "entry", "attr", "statfs"]
    assert reply.results[1].error.errno == errno.ENOENT
    assert reply.results[4].statfs.total_inodes == TOTAL_INODES
    assert names_in(stub, home) == [b"one", b"two"]


def test_atomic_batch_applies_all(stub, home):
    reply = stub.Batch(pb.BatchRequest(atomic=True, request_id=rid(), ops=[
        op("mkdir", parent=home, name=b"d"),
        op("create", parent=home, name=b"f"),
        op("rename", parent=home, name=b"f", new_parent=home, new_name=b"g"),
        op("readdir", ino=home),
    ]))
    assert [e.name for e in reply.results[3].readdir.entries] == [b"d", b"g"]


def test_atomic_batch_failure_applies_nothing(stub, home):
    exc = expect_error(lambda: stub.Batch(pb.BatchRequest(atomic=True, request_id=rid(), ops=[
        op("mkdir", parent=home, name=b"a"),
        op("create", parent=home, name=b"b"),
        op("symlink", parent=home, name=b"c", target=b"a"),
        op("unlink", parent=home, name=b"missing"),
        op("mkdir", parent=home, name=b"e"),
    ])), grpc.StatusCode.NOT_FOUND, errno.ENOENT)
    assert trailers(exc)[BATCH_INDEX_KEY] == "3"
    assert names_in(stub, home) == []


def test_atomic_batch_is_idempotent(stub, home):
    request = pb.BatchRequest(atomic=True, request_id=rid(), ops=[
        op("create", parent=home, name=b"once"), op("mkdir", parent=home, name=b"dir")])
    first, second = stub.Batch(request), stub.Batch(request)
    assert first == second
    assert names_in(stub, home) == [b"dir", b"once"]


@pytest.mark.parametrize("atomic", [False, True])
def test_batch_with_empty_operation_is_rejected_before_running(stub, home, atomic):
    exc = expect_error(lambda: stub.Batch(pb.BatchRequest(atomic=atomic, ops=[
        op("create", request_id=rid(), parent=home, name=b"never"), pb.Operation()])),
        grpc.StatusCode.INVALID_ARGUMENT, errno.EINVAL)
    assert trailers(exc)[BATCH_INDEX_KEY] == "1"
    assert names_in(stub, home) == []


@pytest.mark.parametrize("atomic, count, err", [(False, 10001, errno.E2BIG),
                                                (True, 257, errno.E2BIG)])
def test_batch_over_the_limit_is_rejected(stub, home, atomic, count, err):
    ops = [op("getattr", ino=home)] * count
    expect_error(lambda: stub.Batch(pb.BatchRequest(atomic=atomic, ops=ops)),
                 grpc.StatusCode.INVALID_ARGUMENT, err)


# --- errors and malformed input -------------------------------------------------------------

@pytest.fixture
def tree(stub, home) -> dict[str, int]:
    """home/{file, dir, full/x}, for the error cases."""
    inos = {"home": home, "file": create(stub, home, b"file").ino}
    for name in ("dir", "full"):
        inos[name] = stub.Mkdir(pb.MkdirRequest(request_id=rid(), parent=home,
                                                name=name.encode())).ino
    create(stub, inos["full"], b"x")
    return inos


C = grpc.StatusCode
LONG_NAME = b"n" * 256


def _rename(t, name=b"file", new_name=b"other", flags=0):
    return ("Rename", pb.RenameRequest(request_id=rid(), parent=t["home"], name=name,
                                       new_parent=t["home"], new_name=new_name, flags=flags))


def _create(t, name):
    return ("Create", pb.CreateRequest(request_id=rid(), parent=t["home"], name=name))


def _setxattr(t, name=b"user.k", value=b"v"):
    return ("SetXattr", pb.SetXattrRequest(request_id=rid(), ino=t["file"], name=name, value=value))


ERROR_CASES = {
    "unknown inode": (lambda t: ("GetAttr", pb.GetAttrRequest(ino=987654321)), C.NOT_FOUND, errno.ENOENT),
    "inode zero": (lambda t: ("GetAttr", pb.GetAttrRequest(ino=0)), C.NOT_FOUND, errno.ENOENT),
    "unknown name": (lambda t: ("Lookup", pb.LookupRequest(parent=t["home"], name=b"nope")), C.NOT_FOUND, errno.ENOENT),
    "create in unknown dir": (lambda t: ("Create", pb.CreateRequest(request_id=rid(), parent=987654321, name=b"a")), C.NOT_FOUND, errno.ENOENT),
    "name exists": (lambda t: _create(t, b"file"), C.ALREADY_EXISTS, errno.EEXIST),
    "name with slash": (lambda t: _create(t, b"a/b"), C.INVALID_ARGUMENT, errno.EINVAL),
    "name with NUL": (lambda t: _create(t, b"a\0b"), C.INVALID_ARGUMENT, errno.EINVAL),
    "empty name": (lambda t: _create(t, b""), C.INVALID_ARGUMENT, errno.EINVAL),
    "create dot": (lambda t: _create(t, b"."), C.INVALID_ARGUMENT, errno.EINVAL),
    "create dotdot": (lambda t: _create(t, b".."), C.INVALID_ARGUMENT, errno.EINVAL),
    "rename dot": (lambda t: _rename(t, name=b"."), C.INVALID_ARGUMENT, errno.EINVAL),
    "rename to dotdot": (lambda t: _rename(t, new_name=b".."), C.INVALID_ARGUMENT, errno.EINVAL),
    "unlink dotdot": (lambda t: ("Unlink", pb.UnlinkRequest(request_id=rid(), parent=t["home"], name=b"..")), C.INVALID_ARGUMENT, errno.EINVAL),
    "name 256 bytes": (lambda t: _create(t, LONG_NAME), C.INVALID_ARGUMENT, errno.ENAMETOOLONG),
    "lookup 256 bytes": (lambda t: ("Lookup", pb.LookupRequest(parent=t["home"], name=LONG_NAME)), C.INVALID_ARGUMENT, errno.ENAMETOOLONG),
    "rename to 256 bytes": (lambda t: _rename(t, new_name=LONG_NAME), C.INVALID_ARGUMENT, errno.ENAMETOOLONG),
    "create under a file": (lambda t: ("Create", pb.CreateRequest(request_id=rid(), parent=t["file"], name=b"a")), C.FAILED_PRECONDITION, errno.ENOTDIR),
    "unlink a directory": (lambda t: ("Unlink", pb.UnlinkRequest(request_id=rid(), parent=t["home"], name=b"dir")), C.FAILED_PRECONDITION, errno.EISDIR),
    "rmdir not empty": (lambda t: ("Rmdir", pb.RmdirRequest(request_id=rid(), parent=t["home"], name=b"full")), C.FAILED_PRECONDITION, errno.ENOTEMPTY),
    "hard link a directory": (lambda t: ("Link", pb.LinkRequest(request_id=rid(), ino=t["dir"], parent=t["home"], name=b"l")), C.FAILED_PRECONDITION, errno.EPERM),
    "unknown rename flags": (lambda t: _rename(t, flags=8), C.INVALID_ARGUMENT, errno.EINVAL),
    "rename whiteout": (lambda t: _rename(t, flags=RenameFlags.WHITEOUT), C.UNIMPLEMENTED, errno.EOPNOTSUPP),
    "rename noreplace": (lambda t: _rename(t, new_name=b"dir", flags=RenameFlags.NOREPLACE), C.ALREADY_EXISTS, errno.EEXIST),
    "missing xattr": (lambda t: ("GetXattr", pb.GetXattrRequest(ino=t["file"], name=b"user.no")), C.NOT_FOUND, errno.ENODATA),
    "xattr value too big": (lambda t: _setxattr(t, value=b"v" * 65537), C.INVALID_ARGUMENT, errno.E2BIG),
    "xattr name 256 bytes": (lambda t: _setxattr(t, name=b"u" * 256), C.INVALID_ARGUMENT, errno.ERANGE),
    "mknod unspecified type": (lambda t: ("Mknod", pb.MknodRequest(request_id=rid(), parent=t["home"], name=b"m")), C.INVALID_ARGUMENT, errno.EINVAL),
    "mknod unknown type": (lambda t: ("Mknod", pb.MknodRequest(request_id=rid(), parent=t["home"], name=b"m", type=99)), C.INVALID_ARGUMENT, errno.EINVAL),
    "mknod directory": (lambda t: ("Mknod", pb.MknodRequest(request_id=rid(), parent=t["home"], name=b"m", type=pb.DIRECTORY)), C.FAILED_PRECONDITION, errno.EPERM),
    "request id 65 bytes": (lambda t: ("Create", pb.CreateRequest(request_id=b"r" * 65, parent=t["home"], name=b"a")), C.INVALID_ARGUMENT, errno.EINVAL),
    "readdir limit too big": (lambda t: ("ReadDir", pb.ReadDirRequest(ino=t["home"], limit=10001)), C.INVALID_ARGUMENT, errno.EINVAL),
    "readdir of a file": (lambda t: ("ReadDir", pb.ReadDirRequest(ino=t["file"])), C.FAILED_PRECONDITION, errno.ENOTDIR),
    "write slice without slice": (lambda t: ("WriteSlice", pb.WriteSliceRequest(request_id=rid(), ino=t["file"])), C.INVALID_ARGUMENT, errno.EINVAL),
    "truncate a directory": (lambda t: ("SetAttr", pb.SetAttrRequest(request_id=rid(), ino=t["dir"], mask=SetAttrMask.SIZE)), C.FAILED_PRECONDITION, errno.EISDIR),
    "file too big": (lambda t: ("SetAttr", pb.SetAttrRequest(request_id=rid(), ino=t["file"], mask=SetAttrMask.SIZE, size=1 << 61)), C.INVALID_ARGUMENT, errno.EFBIG),
    "relative path": (lambda t: ("Resolve", pb.ResolveRequest(path=b"relative")), C.INVALID_ARGUMENT, errno.EINVAL),
    "readlink of a file": (lambda t: ("ReadLink", pb.ReadLinkRequest(ino=t["file"])), C.INVALID_ARGUMENT, errno.EINVAL),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_status_and_errno(stub, tree, case):
    make, code, err = ERROR_CASES[case]
    rpc, request = make(tree)
    exc = expect_error(lambda: getattr(stub, rpc)(request, timeout=TIMEOUT), code, err)
    assert BATCH_INDEX_KEY not in trailers(exc)
    assert stub.GetAttr(pb.GetAttrRequest(ino=ROOT_INO), timeout=TIMEOUT).ino == ROOT_INO
    assert sorted(names_in(stub, tree["home"])) == [b"dir", b"file", b"full"]


def test_unexpected_exception_is_internal_without_traceback(stub, server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(server.runner, "call", broken)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetAttr(pb.GetAttrRequest(ino=ROOT_INO), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in info.value.details() and "Traceback" not in info.value.details()
    monkeypatch.undo()
    assert stub.GetAttr(pb.GetAttrRequest(ino=ROOT_INO), timeout=TIMEOUT).ino == ROOT_INO


@pytest.mark.parametrize("err, code", [(errno.ENOENT, C.NOT_FOUND), (errno.EAGAIN, C.ABORTED),
                                       (errno.EIO, C.UNAVAILABLE), (errno.EROFS, C.FAILED_PRECONDITION),
                                       (errno.EPROTO, C.INTERNAL), (errno.ENOSYS, C.UNIMPLEMENTED),
                                       (errno.EXDEV, C.FAILED_PRECONDITION), (errno.EBADF, C.UNKNOWN)])
def test_errno_table(err, code):
    assert status_code(err) == code


# --- idempotency --------------------------------------------------------------------------

def test_create_retried_with_same_request_id_creates_once(stub, home):
    request_id = rid()
    first = create(stub, home, b"f", request_id)
    second = create(stub, home, b"f", request_id)
    assert first == second
    assert names_in(stub, home) == [b"f"]
    expect_error(lambda: create(stub, home, b"f"), C.ALREADY_EXISTS, errno.EEXIST)


def test_unlink_retried_with_same_request_id_succeeds_twice(stub, home):
    create(stub, home, b"f")
    request = pb.UnlinkRequest(request_id=rid(), parent=home, name=b"f")
    assert stub.Unlink(request) == pb.Empty()
    assert stub.Unlink(request) == pb.Empty()
    expect_error(lambda: stub.Unlink(pb.UnlinkRequest(request_id=rid(), parent=home, name=b"f")),
                 C.NOT_FOUND, errno.ENOENT)


def test_independent_batch_ops_use_their_own_request_ids(stub, home):
    request = pb.BatchRequest(ops=[op("create", request_id=rid(), parent=home, name=b"f")])
    first, second = stub.Batch(request), stub.Batch(request)
    assert first.results[0].entry.ino == second.results[0].entry.ino
    assert names_in(stub, home) == [b"f"]


# --- codec and maintenance without the network ----------------------------------------------

ATTR = Attr(9, FileType.SYMLINK, 0o777, 1, 2, 3, 4, 5, 1, 6, 0, 1)


@pytest.mark.parametrize("value", [
    ATTR, Entry(b"n", 9, FileType.SYMLINK, ATTR), Entry(b"n", 9, FileType.FIFO),
    Slice(1, 2, 3, 0, 3), DirPage([Entry(b"a", 2, FileType.REGULAR)], b"a"),
    StatFs(100, 10, 50, 5), CompactResult([Slice(0, 7, 10, 0, 10)], [3, 4])])
def test_codec_round_trips_domain_values(value):
    assert to_domain(to_message(value, _message_class(value))) == value


def _message_class(value):
    return {Attr: pb.Attr, Entry: pb.Entry, Slice: pb.Slice, DirPage: pb.ReadDirReply,
            StatFs: pb.StatFsReply, CompactResult: pb.CompactChunkReply}[type(value)]


def test_codec_file_type_values_equal_proto_enum():
    assert {t.name: t.value for t in FileType} == \
        {name: number for name, number in pb.FileType.items() if number}


@pytest.fixture
def runner():
    engine = open_engine("memory://")
    yield Runner(formatted(engine))
    engine.close()


def test_maintenance_expires_requests_folds_usage_and_trims_log(runner):
    request_id = rid()
    runner.call("mkdir", request_id, parent=ROOT_INO, name=b"d")
    runner.call("rmdir", rid(), parent=ROOT_INO, name=b"d")
    before = runner.call("statfs")
    Maintenance(runner, interval_s=60, request_ttl_s=0, changelog_keep=1).run_once()
    # The record is gone, so the same id runs again (and really creates the directory).
    runner.call("mkdir", request_id, parent=ROOT_INO, name=b"d")
    assert runner.call("lookup", parent=ROOT_INO, name=b"d").type == FileType.DIRECTORY
    assert runner.call("statfs").used_inodes == before.used_inodes + 1
    assert runner.engine.trim_changes(1) == 1       # only the newest mkdir was left to drop


def test_maintenance_survives_a_failing_task(runner, monkeypatch, caplog):
    def broken(op, **kwargs):
        raise RuntimeError("engine hiccup")
    trimmed = []
    monkeypatch.setattr(runner, "call_internal", broken)
    monkeypatch.setattr(runner.engine, "trim_changes", trimmed.append)
    maintenance = Maintenance(runner, interval_s=60, request_ttl_s=1, changelog_keep=5)
    maintenance.run_once()
    assert trimmed == [5]
    assert "fold usage deltas failed" in caplog.text
    maintenance.start()
    maintenance.stop()
