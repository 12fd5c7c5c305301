"""Per-method call counts and latency of every gRPC method served (Metadata, Batch,
Echo, Replication, ServerInfo, health), by status code, as the go-grpc-prometheus
names them. The runner's metaserver_ops_* count namespace operations (a Batch's each);
these count calls, including those refused before any operation runs."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import grpc
from prometheus_client import Counter, Histogram

HANDLED = Counter("metaserver_grpc_server_handled_total", "RPCs completed, by status code",
                  ["grpc_service", "grpc_method", "grpc_code"])
SECONDS = Histogram("metaserver_grpc_server_handling_seconds",
                    "RPC latency in the server (for a stream: until it ends)",
                    ["grpc_service", "grpc_method"],
                    buckets=(.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                             .5, 1, 2.5, 5, 10, 30))


@functools.cache
def _labels(method: str) -> tuple[str, str]:
    """(service, method) of `/package.Service/Method`, the service without its package."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service.rpartition(".")[2], name


@functools.cache
def _latency(service: str, method: str):
    return SECONDS.labels(service, method)


@functools.cache
def _handled(service: str, method: str, code: grpc.StatusCode):
    return HANDLED.labels(service, method, code.name)


class RpcMetrics(grpc.ServerInterceptor):
    """Outermost interceptor: times every call and counts it by the code it ended with."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        labels = _labels(handler_call_details.method)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_unary(handler.unary_unary, labels))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_stream(handler.unary_stream, labels))
        return handler      # no client- or bidi-streaming methods are served


def _unary(behavior, labels: tuple[str, str]):
    def counted(request, context: grpc.ServicerContext):
        start = time.perf_counter()
        try:
            reply = behavior(request, context)
        except BaseException:
            _record(labels, context, start, grpc.StatusCode.UNKNOWN)
            raise
        _record(labels, context, start, grpc.StatusCode.OK)
        return reply
    return counted


def _stream(behavior, labels: tuple[str, str]):
    def counted(request, context: grpc.ServicerContext) -> Iterator:
        start = time.perf_counter()
        try:
            yield from behavior(request, context)
        except BaseException:
            _record(labels, context, start, grpc.StatusCode.UNKNOWN)
            raise
        _record(labels, context, start, grpc.StatusCode.OK)
    return counted


def _record(labels: tuple[str, str], context: grpc.ServicerContext, start: float,
            otherwise: grpc.StatusCode) -> None:
    """`otherwise`: the code when the handler set none (an exception other than
    abort's is answered UNKNOWN by grpc)."""
    _latency(*labels).observe(time.perf_counter() - start)
    _handled(*labels, context.code() or otherwise).inc()
