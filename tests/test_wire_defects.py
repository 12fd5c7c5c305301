"""Defects an operator found over the wire, each against a real server on 127.0.0.1:
paths with a trailing slash after a file, undecodable request bytes, requests over the
message size limit, and a request id replayed by another RPC."""

from __future__ import annotations

import errno
import uuid

import grpc
import pytest

from metaserver.client import Client
from metaserver.client.errors import ERRNO_KEY, from_rpc_error
from metaserver.service import ServerConfig, start
from metaserver.types import ROOT_INO, FileType
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc
from metaserver.v1 import replication_pb2 as rpb

TIMEOUT = 10
MAX_MESSAGE_MB = 1
# A length-delimited field 1 whose length runs past the end: no message decodes from it.
UNDECODABLE = b"\x0a\xff\xff\xff\x0f"


@pytest.fixture(scope="module")
def server():
    running = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", workers=4,
                                 max_message_mb=MAX_MESSAGE_MB))
    yield running
    running.stop(grace=1)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def client(server):
    with Client(server.address) as c:
        yield c


@pytest.fixture
def home(client) -> int:
    return client.mkdir(ROOT_INO, uuid.uuid4().hex).ino


# --- a trailing slash after a non-directory -------------------------------------------------

@pytest.mark.parametrize("suffix", ["/", "/.", "/./", "//", "/..", "/./."])
def test_trailing_slash_after_a_file_is_enotdir(client, home, suffix):
    f = client.create(home, "f")
    path = f"/{_name_of(client, home)}/f"
    assert client.resolve(path).ino == f.ino
    with pytest.raises(NotADirectoryError):
        client.resolve(path + suffix)


@pytest.mark.parametrize("suffix", ["", "/", "/.", "/./", "//"])
def test_trailing_slash_after_a_directory_is_the_directory(client, home, suffix):
    d = client.mkdir(home, "d")
    path = f"/{_name_of(client, home)}/d{suffix}"
    assert client.resolve(path).ino == d.ino


def test_dot_dot_goes_up_from_a_directory(client, home):
    client.mkdir(home, "d")
    assert client.resolve(f"/{_name_of(client, home)}/d/..").ino == home


def _name_of(client, ino: int) -> str:
    """The name of a directory directly under the root."""
    return next(e.name.decode() for e in client.readdir(ROOT_INO) if e.ino == ino)


# --- undecodable request bytes --------------------------------------------------------------

@pytest.mark.parametrize("method", ["/metaserver.v1.Metadata/Lookup",
                                    "/metaserver.v1.Metadata/Create",
                                    "/metaserver.v1.Metadata/Batch",
                                    "/metaserver.v1.Replication/Status"])
def test_undecodable_request_is_einval(channel, method):
    call = channel.unary_unary(method)   # no serializer: the bytes go as they are
    with pytest.raises(grpc.RpcError) as raised:
        call(UNDECODABLE, timeout=TIMEOUT)
    _assert_einval(raised.value)


def test_undecodable_streaming_request_is_einval(channel):
    call = channel.unary_stream("/metaserver.v1.Replication/Stream")
    with pytest.raises(grpc.RpcError) as raised:
        list(call(UNDECODABLE, timeout=TIMEOUT))
    _assert_einval(raised.value)


def _assert_einval(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(error.trailing_metadata())[ERRNO_KEY] == str(errno.EINVAL)
    assert "deserializing" not in error.details()


def test_server_still_answers_after_undecodable_requests(channel, client):
    with pytest.raises(grpc.RpcError):
        channel.unary_unary("/metaserver.v1.Metadata/GetAttr")(UNDECODABLE, timeout=TIMEOUT)
    assert client.getattr(ROOT_INO).type == FileType.DIRECTORY


# --- requests over the size limit -----------------------------------------------------------

def test_request_over_the_servers_size_limit_is_e2big(client, server):
    with pytest.raises(OSError) as raised:
        client.echo(b"x" * ((MAX_MESSAGE_MB << 20) + 1))
    assert raised.value.errno == errno.E2BIG
    assert server.address not in str(raised.value)
    assert "size limit" in str(raised.value)


def test_batch_over_the_servers_size_limit_is_e2big(client, home):
    batch = client.batch()
    for i in range(MAX_MESSAGE_MB << 20 >> 8):   # about 300 bytes per operation
        batch.setxattr(home, f"user.a{i}", b"v" * 250)
    with pytest.raises(OSError) as raised:
        batch.run()
    assert raised.value.errno == errno.E2BIG
    assert client.listxattr(home) == []   # nothing of it ran


class _Failure(grpc.RpcError):
    """A failed call as grpc hands it over: code, details, trailers."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers=()) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


def test_resource_exhausted_with_the_servers_errno_keeps_it():
    error = from_rpc_error(_Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "no space, larger than max",
                                    ((ERRNO_KEY, str(errno.ENOSPC)),)), "127.0.0.1:1", [b"f"])
    assert (error.errno, error.filename) == (errno.ENOSPC, "f")


def test_sent_message_over_the_clients_limit_is_e2big():
    error = from_rpc_error(_Failure(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    "Sent message larger than max (300 vs. 200)"),
                           "127.0.0.1:1", [b"f"])
    assert (error.errno, error.filename) == (errno.E2BIG, "f")


# --- one request id, two RPCs ---------------------------------------------------------------

def test_create_id_replayed_by_mknod_fifo_is_refused(channel, client, home):
    stub = pb_grpc.MetadataStub(channel)
    request_id = uuid.uuid4().bytes
    first = stub.Create(pb.CreateRequest(request_id=request_id, parent=home, name=b"a",
                                         mode=0o600), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Mknod(pb.MknodRequest(request_id=request_id, parent=home, name=b"fifo",
                                   type=pb.FIFO, mode=0o600), timeout=TIMEOUT)
    _assert_einval_for_reuse(raised.value)
    with pytest.raises(FileNotFoundError):
        client.lookup(home, "fifo")
    again = stub.Create(pb.CreateRequest(request_id=request_id, parent=home, name=b"a",
                                         mode=0o600), timeout=TIMEOUT)
    assert again == first
    assert client.lookup(home, "a").attr.type == FileType.REGULAR
    assert [e.name for e in client.readdir(home)] == [b"a"]


def test_mknod_id_replayed_by_create_is_refused(channel, client, home):
    stub = pb_grpc.MetadataStub(channel)
    request_id = uuid.uuid4().bytes
    fifo = stub.Mknod(pb.MknodRequest(request_id=request_id, parent=home, name=b"fifo",
                                      type=pb.FIFO, mode=0o600), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Create(pb.CreateRequest(request_id=request_id, parent=home, name=b"fifo",
                                     mode=0o600), timeout=TIMEOUT)
    _assert_einval_for_reuse(raised.value)
    assert client.lookup(home, "fifo").ino == fifo.ino
    assert client.getattr(fifo.ino).type == FileType.FIFO


def test_batch_create_id_replayed_by_batch_mknod_is_refused(channel, client, home):
    stub = pb_grpc.MetadataStub(channel)
    request_id = uuid.uuid4().bytes
    create = pb.Operation(create=pb.CreateRequest(request_id=request_id, parent=home, name=b"a"))
    mknod = pb.Operation(mknod=pb.MknodRequest(request_id=request_id, parent=home, name=b"p",
                                               type=pb.FIFO))
    first = stub.Batch(pb.BatchRequest(ops=[create]), timeout=TIMEOUT).results[0]
    assert first.WhichOneof("result") == "entry"
    replay = stub.Batch(pb.BatchRequest(ops=[mknod]), timeout=TIMEOUT).results[0]
    assert replay.WhichOneof("result") == "error" and replay.error.errno == errno.EINVAL
    assert stub.Batch(pb.BatchRequest(ops=[create]), timeout=TIMEOUT).results[0] == first
    assert [e.name for e in client.readdir(home)] == [b"a"]


def _assert_einval_for_reuse(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(error.trailing_metadata())[ERRNO_KEY] == str(errno.EINVAL)
    assert "request id already used" in error.details()


def test_status_request_still_decodes(channel):
    """The registration that catches undecodable bytes still decodes good ones."""
    status = channel.unary_unary("/metaserver.v1.Replication/Status",
                                 request_serializer=rpb.StatusRequest.SerializeToString,
                                 response_deserializer=rpb.StatusReply.FromString)
    assert isinstance(status(rpb.StatusRequest(), timeout=TIMEOUT), rpb.StatusReply)
