"""The access log: one line per call (method, what it was about, status, errno, latency,
peer, token id), for every call or a random sample of them.

An interceptor outside the gatekeeper, so refused calls are logged too. Lines go to
the `metaserver.access` logger at INFO, their fields also as the record's `access`
attribute (an object in the JSON log format). Calls not sampled are not wrapped at all: a sample costs only the calls
it logs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator

import grpc

from metaserver.service.errors import ERRNO_KEY

log = logging.getLogger("metaserver.access")

# Request fields that say what a call is about, when its message has them.
SUBJECT_FIELDS = ("ino", "parent", "name", "new_parent", "new_name", "path")


def _subject(request) -> dict[str, object]:
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    return {f: getattr(request, f) for f in SUBJECT_FIELDS if f in fields}


class AccessLog(grpc.ServerInterceptor):
    """Log a `sample` fraction of calls (1: all)."""

    def __init__(self, sample: float) -> None:
        self.sample = sample

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or random.random() >= self.sample:
            return handler
        method = handler_call_details.method.rpartition("/")[2]
        header = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        token = header.partition(" ")[2].partition(".")[0]     # the id, never the secret
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary, method, token))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._stream(handler.unary_stream, method,
                                                              token))
        return handler

    def _unary(self, behavior, method: str, token: str):
        def logged(request, context: grpc.ServicerContext):
            start = time.perf_counter()
            try:
                return behavior(request, context)
            finally:
                _write(method, token, request, context, start)
        return logged

    def _stream(self, behavior, method: str, token: str):
        def logged(request, context: grpc.ServicerContext) -> Iterator:
            start = time.perf_counter()
            try:
                yield from behavior(request, context)
            finally:
                _write(method, token, request, context, start)
        return logged


def _write(method: str, token: str, request, context: grpc.ServicerContext,
           start: float) -> None:
    code = context.code() or grpc.StatusCode.OK
    trailers = dict(context.trailing_metadata() or ())
    fields = {"method": method, "status": code.name, "errno": int(trailers.get(ERRNO_KEY, 0)),
              "ms": round((time.perf_counter() - start) * 1000, 3), "peer": context.peer(),
              "token": token, **{k: v if not isinstance(v, bytes) else
                                  v.decode("utf-8", "backslashreplace")
                                  for k, v in _subject(request).items()}}
    log.info(" ".join(f"{k}={v}" for k, v in fields.items() if v != ""),
             extra={"access": fields})
