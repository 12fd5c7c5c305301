"""How domain errors reach a gRPC client: errno -> status code, plus errno trailers.

The status code tells the class of failure; the exact POSIX errno travels in trailing
metadata so clients can rebuild the FsError. Anything that is not an FsError is a bug
or an engine fault: the client gets INTERNAL with a short message, never a traceback.
"""

from __future__ import annotations

import errno
import logging

import grpc

from metaserver.errors import BatchError, FsError

ERRNO_KEY = "metaserver-errno"
BATCH_INDEX_KEY = "metaserver-batch-index"

log = logging.getLogger(__name__)

_CODE_OF_ERRNO: dict[int, grpc.StatusCode] = {
    errno.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno.ENODATA: grpc.StatusCode.NOT_FOUND,
    errno.EEXIST: grpc.StatusCode.ALREADY_EXISTS,
    errno.EINVAL: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENAMETOOLONG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ERANGE: grpc.StatusCode.INVALID_ARGUMENT,
    errno.E2BIG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.EFBIG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENOTDIR: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EISDIR: grpc.StatusCode.FAILED_PRECONDITION,
    errno.ENOTEMPTY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EMLINK: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EXDEV: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EPERM: grpc.StatusCode.FAILED_PRECONDITION,
    errno.ENOSPC: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EDQUOT: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EROFS: grpc.StatusCode.FAILED_PRECONDITION,
    errno.ETIMEDOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    errno.EOPNOTSUPP: grpc.StatusCode.UNIMPLEMENTED,
    errno.ENOSYS: grpc.StatusCode.UNIMPLEMENTED,
    errno.EAGAIN: grpc.StatusCode.ABORTED,
    errno.EIO: grpc.StatusCode.UNAVAILABLE,
    errno.EPROTO: grpc.StatusCode.INTERNAL,
}


def status_code(code: int) -> grpc.StatusCode:
    return _CODE_OF_ERRNO.get(code, grpc.StatusCode.UNKNOWN)


class PrimaryAnswer(FsError):
    """The primary's own refusal of a call a follower forwarded: passed on to the client
    as it came (status, message, errno and batch-index trailers)."""

    def __init__(self, exc: grpc.RpcError) -> None:
        self.trailers = tuple(exc.trailing_metadata() or ())
        self.status = exc.code()
        super().__init__(int(dict(self.trailers)[ERRNO_KEY]), exc.details())


def abort_with(context: grpc.ServicerContext, exc: FsError) -> None:
    """End the call with the status for `exc` and its errno (and batch index) trailers."""
    if isinstance(exc, PrimaryAnswer):
        context.set_trailing_metadata(exc.trailers)
        context.abort(exc.status, exc.message)
    trailers = [(ERRNO_KEY, str(exc.errno))]
    if isinstance(exc, BatchError):
        trailers.append((BATCH_INDEX_KEY, str(exc.index)))
    context.set_trailing_metadata(trailers)
    context.abort(status_code(exc.errno), exc.message)


def abort_internal(context: grpc.ServicerContext, method: str) -> None:
    """End the call for an unexpected exception; the traceback stays in the server log."""
    log.exception("internal error in %s", method)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the server log")
