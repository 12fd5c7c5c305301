"""Proto <-> domain conversion for every operation, driven by one table.

Each Operation oneof field of the API is one row of OPERATIONS: the RPC taking the same
request message, the op of the same name in OPS it runs, and the reply it builds.
Request fields are the op's keyword parameters by name and reply fields are the
result's attributes by name, so rows only spell out where the wire and the op differ
(see _WIRE_DIFFERENCES).
Malformed input is rejected here, with EINVAL, before anything runs.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from metaserver.errors import BatchError, FsError
from metaserver.ops import OPS
from metaserver.runner import MAX_REQUEST_ID
from metaserver.types import (Attr, CompactResult, DirPage, Entry, FileType, Quota, Slice,
                              StatFs, Summary, TreeCheck)
from metaserver.v1 import metadata_pb2 as pb

MAX_BATCH_OPS = 10000
DEFAULT_READDIR_LIMIT = 1000
SERVICE = pb.DESCRIPTOR.services_by_name["Metadata"]
# RPCs that are not one operation: the servicer implements them itself.
NON_OPERATION_RPCS = {"Batch", "Echo"}

# Domain dataclasses and the messages that carry them; fields match by name.
_MESSAGE_OF_DOMAIN: dict[type, type[Message]] = {
    Attr: pb.Attr, Entry: pb.Entry, Slice: pb.Slice, DirPage: pb.ReadDirReply,
    StatFs: pb.StatFsReply, CompactResult: pb.CompactChunkReply, Summary: pb.TreeSummary,
    Quota: pb.Quota, TreeCheck: pb.TreeCheck,
}
_DOMAIN_OF_MESSAGE = {msg.DESCRIPTOR.full_name: cls for cls, msg in _MESSAGE_OF_DOMAIN.items()}
_FILE_TYPE_ENUM = pb.DESCRIPTOR.enum_types_by_name["FileType"].full_name


@dataclass(frozen=True)
class Operation:
    """One row of the table: how one operation travels over the wire."""
    oneof_field: str                    # its field in the Operation oneof (Batch)
    rpc: str                            # its unary RPC
    op: str                             # the entry of OPS it runs
    request: type[Message]
    reply: type[Message]
    result_field: str                   # the OperationResult oneof field of its reply
    zero_means: Mapping[str, Any] = field(default_factory=dict)    # unset (0) -> default
    from_server: tuple[str, ...] = ()   # kwargs the server's configuration supplies
    # Reply fields from a result that is not a dataclass with the reply's field names.
    shape: Callable[[Any, dict], Mapping[str, Any]] | None = None


class DecodedCall(NamedTuple):
    """A decoded request: what to run and with which request id and arguments."""
    spec: Operation
    request_id: bytes
    kwargs: dict


# Where a wire operation is not simply "the op of the same name, fields as kwargs".
_WIRE_DIFFERENCES: dict[str, dict[str, Any]] = {
    "readdir": dict(zero_means={"limit": DEFAULT_READDIR_LIMIT}),
    "statfs": dict(from_server=("total_bytes", "total_inodes")),
    "alloc_slice_ids": dict(shape=lambda first, kwargs: {"first": first, "count": kwargs["count"]}),
}


def _build_table() -> dict[str, Operation]:
    methods_by_request = {m.input_type.full_name: m for m in SERVICE.methods}
    result_fields = {f.message_type.full_name: f.name
                     for f in pb.OperationResult.DESCRIPTOR.oneofs_by_name["result"].fields}
    table = {}
    for wire in pb.Operation.DESCRIPTOR.oneofs_by_name["op"].fields:
        method = methods_by_request[wire.message_type.full_name]
        if wire.name not in OPS:
            raise RuntimeError(f"Operation field {wire.name!r} names no operation")
        table[wire.name] = Operation(
            oneof_field=wire.name, rpc=method.name, op=wire.name,
            request=GetMessageClass(method.input_type), reply=GetMessageClass(method.output_type),
            result_field=result_fields[method.output_type.full_name],
            **_WIRE_DIFFERENCES.get(wire.name, {}))
    uncovered = {m.name for m in SERVICE.methods} - NON_OPERATION_RPCS \
        - {spec.rpc for spec in table.values()}
    if uncovered:
        raise RuntimeError(f"RPCs without an Operation field: {sorted(uncovered)}")
    return table


OPERATIONS: dict[str, Operation] = _build_table()


# --- domain <-> message, field by field ----------------------------------------------------

def file_type(value: int) -> FileType:
    try:
        return FileType(value)
    except ValueError:
        raise FsError(errno.EINVAL, f"file type {value} is unspecified or unknown") from None


def _value_from_wire(fd: FieldDescriptor, value: Any) -> Any:
    if fd.message_type is not None:
        return [to_domain(v) for v in value] if fd.is_repeated else to_domain(value)
    if fd.enum_type is not None and fd.enum_type.full_name == _FILE_TYPE_ENUM:
        return file_type(value)
    return list(value) if fd.is_repeated else value


def to_domain(msg: Message) -> Any:
    """A message of _MESSAGE_OF_DOMAIN as its domain dataclass."""
    cls = _DOMAIN_OF_MESSAGE[msg.DESCRIPTOR.full_name]
    fds = msg.DESCRIPTOR.fields_by_name
    values = {}
    for f in dataclasses.fields(cls):
        fd = fds[f.name]
        unset = fd.message_type is not None and not fd.is_repeated and not msg.HasField(f.name)
        values[f.name] = None if unset else _value_from_wire(fd, getattr(msg, f.name))
    return cls(**values)


def _source_fields(value: Any, descriptor: Descriptor) -> Mapping[str, Any]:
    """The reply fields a value other than a dataclass provides (to_fields reads a
    dataclass through _dataclass_values): a mapping's items, or, for a plain value, the
    one field of a single-field reply."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    (only,) = descriptor.fields
    return {only.name: value}


class _Plan(NamedTuple):
    names: tuple[str, ...]      # every field, in order
    messages: tuple[tuple[int, str, type[Message], bool], ...]  # (index, name, class, repeated)


@functools.cache
def _plan(cls: type[Message]) -> _Plan:
    """A reply class's fields, and which of them are messages."""
    fields = cls.DESCRIPTOR.fields
    return _Plan(tuple(fd.name for fd in fields),
                 tuple((index, fd.name, GetMessageClass(fd.message_type), fd.is_repeated)
                       for index, fd in enumerate(fields) if fd.message_type))


def to_message(value: Any, cls: type[Message]) -> Message:
    """A domain value (dataclass, mapping, plain value or None) as message `cls`."""
    return cls(**to_fields(value, cls))


def to_fields(value: Any, cls: type[Message]) -> dict[str, Any]:
    """The constructor keywords of message `cls` for a domain value, sub-messages as
    dicts of their own: protobuf builds the whole tree in one call from these, 2.5x
    faster than building each sub-message and copying it into its parent. This runs
    once per result, on the hot path of every RPC; the plans are cached."""
    plan = _plan(cls)
    values_of = _dataclass_values(type(value), cls)
    if values_of is None:
        source = _source_fields(value, cls.DESCRIPTOR)
        values = [source.get(name) for name in plan.names]
    else:
        values = values_of(value)
    kwargs = {name: item for name, item in zip(plan.names, values) if item is not None}
    for index, name, sub, repeated in plan.messages:
        item = values[index]
        if item is not None:
            kwargs[name] = [to_fields(v, sub) for v in item] if repeated else to_fields(item, sub)
    return kwargs


@functools.cache
def _dataclass_values(vtype: type, cls: type[Message]) -> Callable[[Any], tuple] | None:
    """For a dataclass type, a getter of the attributes named like `cls`'s fields (in
    their order); None for other values."""
    if not dataclasses.is_dataclass(vtype):
        return None
    names = _plan(cls).names
    if len(names) < 2:      # attrgetter returns a tuple only for two names or more
        return lambda value: tuple(getattr(value, name) for name in names)
    return operator.attrgetter(*names)


def _shaped(call: DecodedCall, result: Any) -> Any:
    """An operation's result as its reply message's fields see it."""
    return call.spec.shape(result, call.kwargs) if call.spec.shape else result


@functools.cache
def _request_plan(cls: type[Message]) -> tuple[tuple[str, FieldDescriptor, bool], ...]:
    """Per request field: its name, descriptor, and whether its wire value is its value
    as it is (a scalar that is neither the request id nor a file type)."""
    return tuple((fd.name, fd, fd.name != "request_id" and fd.message_type is None
                  and fd.enum_type is None and not fd.is_repeated)
                 for fd in cls.DESCRIPTOR.fields)


class Undecodable(NamedTuple):
    """Request bytes that are not the RPC's message (the handler answers EINVAL)."""
    reason: str


def request_decoder(cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """gRPC's request deserializer for `cls`. It returns Undecodable rather than raise:
    gRPC would answer a raise with INTERNAL and no errno, before any handler runs."""
    def decode(data: bytes) -> Message | Undecodable:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return Undecodable(f"request is not a valid {cls.DESCRIPTOR.full_name}: {exc}")
    return decode


def check_request_id(request_id: bytes) -> bytes:
    if len(request_id) > MAX_REQUEST_ID:
        raise FsError(errno.EINVAL, f"request id longer than {MAX_REQUEST_ID} bytes")
    return request_id


# --- requests and replies of operations ----------------------------------------------------

class Codec:
    """Decodes requests into runner calls and encodes results, for one server."""

    def __init__(self, *, total_bytes: int, total_inodes: int) -> None:
        self._server_kwargs = {"total_bytes": total_bytes, "total_inodes": total_inodes}

    def decode(self, spec: Operation, request: Message) -> DecodedCall:
        request_id = b""
        kwargs = {}
        for name, fd, plain in _request_plan(type(request)):
            value = getattr(request, name)
            if plain:
                kwargs[name] = value
            elif name == "request_id":
                request_id = check_request_id(value)
            elif fd.message_type is not None and not request.HasField(name):
                raise FsError(errno.EINVAL, f"{spec.rpc}: field {name!r} is required")
            else:
                kwargs[name] = _value_from_wire(fd, value)
        for name, default in spec.zero_means.items():
            kwargs[name] = kwargs[name] or default
        kwargs.update({name: self._server_kwargs[name] for name in spec.from_server})
        return DecodedCall(spec, request_id, kwargs)

    def decode_operation(self, operation: pb.Operation) -> DecodedCall:
        name = operation.WhichOneof("op")
        if name is None:
            raise FsError(errno.EINVAL, "empty Operation: no operation set")
        return self.decode(OPERATIONS[name], getattr(operation, name))

    def decode_batch(self, request: pb.BatchRequest) -> list[DecodedCall]:
        """Every operation of a batch, or BatchError naming the first malformed one."""
        if len(request.ops) > MAX_BATCH_OPS:
            raise FsError(errno.E2BIG, f"a batch holds at most {MAX_BATCH_OPS} operations")
        check_request_id(request.request_id)
        calls = []
        for index, operation in enumerate(request.ops):
            try:
                calls.append(self.decode_operation(operation))
            except FsError as exc:
                raise BatchError(index, exc) from exc
        return calls

    @staticmethod
    def encode(call: DecodedCall, result: Any) -> Message:
        return to_message(_shaped(call, result), call.spec.reply)

    @staticmethod
    def encode_batch(calls: list[DecodedCall], results: list) -> pb.BatchReply:
        """A Batch's reply: per operation its reply, or the FsError it raised."""
        return pb.BatchReply(results=[
            {"error": {"errno": result.errno, "message": result.message}}
            if isinstance(result, FsError) else
            {call.spec.result_field: to_fields(_shaped(call, result), call.spec.reply)}
            for call, result in zip(calls, results)])
