"""The wire side of the client: how each operation is sent and how its reply becomes
one of the domain values of metaserver.types. The table is read off the API's
descriptors (as the server's is), so an operation added to the proto needs no entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor
from google.protobuf.message_factory import GetMessageClass

from metaserver.types import (Attr, CompactResult, DirPage, Entry, FileType, Quota, Slice,
                              StatFs, Summary, TreeCheck)
from metaserver.v1 import metadata_pb2 as pb


def attr(m: pb.Attr) -> Attr:
    return Attr(m.ino, FileType(m.type), m.mode, m.uid, m.gid, m.atime_ns, m.mtime_ns,
                m.ctime_ns, m.nlink, m.size, m.rdev, m.parent)


def entry(m: pb.Entry) -> Entry:
    return Entry(m.name, m.ino, FileType(m.type), attr(m.attr) if m.HasField("attr") else None)


def slice_(m: pb.Slice) -> Slice:
    return Slice(m.pos, m.id, m.size, m.off, m.len)


def slice_to_pb(s: Slice) -> pb.Slice:
    return pb.Slice(pos=s.pos, id=s.id, size=s.size, off=s.off, len=s.len)


def dir_page(m: pb.ReadDirReply) -> DirPage:
    return DirPage([entry(e) for e in m.entries], m.cursor)


def statfs(m: pb.StatFsReply) -> StatFs:
    # avail_* are derived properties of StatFs; the reply's copies are not needed.
    return StatFs(m.total_bytes, m.used_bytes, m.total_inodes, m.used_inodes)


def compacted(m: pb.CompactChunkReply) -> CompactResult:
    return CompactResult([slice_(s) for s in m.slices], list(m.released))


def summary(m: pb.TreeSummary) -> Summary:
    return Summary(m.dirs, m.files, m.size)


def quota(m: pb.Quota) -> Quota:
    return Quota(m.ino, m.max_bytes, m.max_inodes, m.used_bytes, m.used_inodes)


def tree_check(m: pb.TreeCheck) -> TreeCheck:
    return TreeCheck(m.ino, summary(m.kept), summary(m.walked), m.wrong, m.repaired)


@dataclass(frozen=True)
class Call:
    """One operation: its RPC on the stub, its request message, what its reply means."""
    rpc: str
    request: type
    result: Callable
    mutating: bool


# Replies that carry a domain value, by message name; the others are read by shape.
_DOMAIN_REPLIES: dict[str, Callable] = {
    "Entry": entry, "Attr": attr, "ReadDirReply": dir_page, "StatFsReply": statfs,
    "CompactChunkReply": compacted, "Slice": slice_, "TreeSummary": summary, "Quota": quota,
    "TreeCheck": tree_check,
}
# Where the reply is not read by its shape: AllocSliceIds answers the first id.
_RESULT_DIFFERENCES: dict[str, Callable] = {"alloc_slice_ids": lambda m: m.first}


def _by_shape(reply: Descriptor) -> Callable:
    """Nothing for an empty reply, the field of a one-field reply (a list if repeated,
    domain values if messages), else the fields as a tuple."""
    if reply.name in _DOMAIN_REPLIES:
        return _DOMAIN_REPLIES[reply.name]
    if not reply.fields:
        return lambda m: None
    if len(reply.fields) > 1:
        names = [f.name for f in reply.fields]
        return lambda m: tuple(getattr(m, n) for n in names)
    (only,) = reply.fields
    convert = _by_shape(only.message_type) if only.message_type else (lambda v: v)
    if only.is_repeated:
        return lambda m: [convert(v) for v in getattr(m, only.name)]
    return lambda m: convert(getattr(m, only.name))


def _build_calls() -> dict[str, Call]:
    """One Call per field of the Operation oneof (the operations a Batch can carry):
    the RPC taking that request; mutating when the request carries a request id."""
    service = pb.DESCRIPTOR.services_by_name["Metadata"]
    method_of = {m.input_type.full_name: m for m in service.methods}
    calls = {}
    for wire in pb.Operation.DESCRIPTOR.oneofs_by_name["op"].fields:
        method = method_of[wire.message_type.full_name]
        calls[wire.name] = Call(
            method.name, GetMessageClass(method.input_type),
            _RESULT_DIFFERENCES.get(wire.name) or _by_shape(method.output_type),
            "request_id" in method.input_type.fields_by_name)
    return calls


# Keyed by the operation's field name in `Operation`, so a batch queues it by that name
# and reads its `OperationResult` (the same reply message) with the same converter.
CALLS: dict[str, Call] = _build_calls()
