"""The Metadata gRPC servicer: decode, run on the Runner, encode; nothing else.

The unary handlers are made from the codec's table, one per operation; Batch and Echo
are the only handlers written out. Errors leave through service.errors. `add_service`
registers a servicer (this one or Replication's) so that undecodable request bytes get
EINVAL like any other bad input.
"""

from __future__ import annotations

import errno
import functools
import time
from collections.abc import Callable

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from metaserver.errors import FsError
from metaserver.ops import OPS
from metaserver.runner import Runner
from metaserver.service.codec import OPERATIONS, Codec, Operation, Undecodable, request_decoder
from metaserver.service.errors import abort_internal, abort_with
from metaserver.service.node import Node
from metaserver.v1 import metadata_pb2 as pb

Handler = Callable[[object, grpc.ServicerContext], object]


def _reporting_errors(method: str, handler: Handler) -> Handler:
    """Wrap a handler so FsErrors become statuses and anything else becomes INTERNAL."""
    @functools.wraps(handler)
    def wrapped(request, context: grpc.ServicerContext):
        try:
            return handler(request, context)
        except FsError as exc:
            abort_with(context, exc)
        except Exception:
            abort_internal(context, method)
    return wrapped


def _refusing_undecodable(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def wrapped(request, context: grpc.ServicerContext):
        if isinstance(request, Undecodable):
            abort_with(context, FsError(errno.EINVAL, request.reason))
        return handler(request, context)
    return wrapped


def _deadline(context: grpc.ServicerContext) -> float | None:
    """The client's deadline on time.monotonic()'s clock (the runner retries within it)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


# (client streaming, server streaming) -> how gRPC wraps such a method's handler
_HANDLER_KINDS = {(False, False): grpc.unary_unary_rpc_method_handler,
                  (False, True): grpc.unary_stream_rpc_method_handler}


def add_service(server: grpc.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Serve `service` with `servicer`'s methods of the same names: what the generated
    add_*Servicer_to_server does, with request_decoder as the deserializer."""
    handlers = {}
    for method in service.methods:
        kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        handlers[method.name] = kind(
            _refusing_undecodable(getattr(servicer, method.name)),
            request_deserializer=request_decoder(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),))


class MetadataServicer:
    """Serves metaserver.v1.Metadata; each RPC is an attribute named like the RPC."""

    def __init__(self, runner: Runner, codec: Codec, node: Node) -> None:
        self.runner = runner
        self.codec = codec
        self.node = node    # the replication role: a follower forwards writes
        for spec in OPERATIONS.values():
            setattr(self, spec.rpc, _reporting_errors(spec.rpc, functools.partial(self._unary, spec)))
        self.Batch = _reporting_errors("Batch", self._batch)

    def _unary(self, spec: Operation, request, context: grpc.ServicerContext):
        call = self.codec.decode(spec, request)
        return self.node.run(spec.rpc, OPS[spec.op].mutating, request, context, lambda: (
            self.codec.encode(call, self.runner.call(spec.op, call.request_id,
                                                     deadline=_deadline(context), **call.kwargs))),
            self.runner.take_commit_seq)

    def _batch(self, request: pb.BatchRequest, context: grpc.ServicerContext) -> pb.BatchReply:
        calls = self.codec.decode_batch(request)
        mutating = any(OPS[c.spec.op].mutating for c in calls)
        return self.node.run("Batch", mutating, request, context,
                             lambda: self._local_batch(request, calls, _deadline(context)),
                             self.runner.take_commit_seq)

    def _local_batch(self, request: pb.BatchRequest, calls: list,
                     deadline: float | None) -> pb.BatchReply:
        if request.atomic:
            results = self.runner.call_atomic([(c.spec.op, c.kwargs) for c in calls],
                                              request.request_id, deadline)
        else:
            results = self.runner.call_many([(c.spec.op, c.request_id, c.kwargs) for c in calls],
                                            deadline)
        return self.codec.encode_batch(calls, results)

    @staticmethod
    def Echo(request: pb.EchoRequest, context: grpc.ServicerContext) -> pb.EchoReply:
        return pb.EchoReply(payload=request.payload)

