"""Turn gRPC failures into OSError with the server's errno, and say which are transient.

The server puts the POSIX errno in the `metaserver-errno` trailer (and the failing
operation of an atomic batch in `metaserver-batch-index`); `OSError(errno, message,
filename)` then picks the matching subclass (FileNotFoundError, FileExistsError, ...).
Without the trailer the call never got an answer from the metaserver itself, so the
errno comes from the status code and the error names the server address.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import grpc

ERRNO_KEY = "metaserver-errno"
BATCH_INDEX_KEY = "metaserver-batch-index"

_ERRNO_OF_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.NOT_FOUND: errno.ENOENT,
    grpc.StatusCode.ALREADY_EXISTS: errno.EEXIST,
    grpc.StatusCode.INVALID_ARGUMENT: errno.EINVAL,
    grpc.StatusCode.OUT_OF_RANGE: errno.ERANGE,
    grpc.StatusCode.PERMISSION_DENIED: errno.EACCES,
    grpc.StatusCode.UNAUTHENTICATED: errno.EACCES,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errno.ENOSPC,
    grpc.StatusCode.UNIMPLEMENTED: errno.ENOSYS,
    grpc.StatusCode.ABORTED: errno.EAGAIN,
    grpc.StatusCode.CANCELLED: errno.ECANCELED,
    grpc.StatusCode.DEADLINE_EXCEEDED: errno.ETIMEDOUT,
    grpc.StatusCode.UNAVAILABLE: errno.EIO,
}

# Worth another attempt: the server was unreachable, or gave up on a conflict.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
# A mutation that timed out may or may not have been applied; resending it with the
# same request id settles that, so mutations also retry this one.
TRANSIENT_MUTATION = TRANSIENT | {grpc.StatusCode.DEADLINE_EXCEEDED}


def is_transient(exc: BaseException, mutating: bool) -> bool:
    if not isinstance(exc, grpc.RpcError):
        return False
    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return over_limit(exc)
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and answered(exc):
        return False    # the server's own ETIMEDOUT (a min-seq wait ran out): final
    return exc.code() in (TRANSIENT_MUTATION if mutating else TRANSIENT)


def over_limit(exc: grpc.RpcError) -> bool:
    """The server refused the call, unrun, for a rate or concurrency limit (EAGAIN):
    worth another attempt after backing off."""
    return dict(exc.trailing_metadata() or ()).get(ERRNO_KEY) == str(errno.EAGAIN)


def outcome_unknown(exc: grpc.RpcError) -> bool:
    """A failed attempt the server may have applied anyway: it timed out, or the
    connection was lost after the request could have been sent."""
    return exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
                          grpc.StatusCode.CANCELLED)


def answered(exc: grpc.RpcError) -> bool:
    """Whether the metaserver itself failed the call (its errno trailer is there)."""
    return any(key == ERRNO_KEY for key, _ in exc.trailing_metadata() or ())


def oserror(code: int, message: str, subject: bytes | str | None,
            batch_index: int | None = None) -> OSError:
    """OSError(code, ...) is already the right subclass; `batch_index` says which
    operation of a batch failed (None outside batches)."""
    error = OSError(code, message or os.strerror(code),
                    None if subject is None else os.fsdecode(subject))
    error.batch_index = batch_index
    return error


def from_rpc_error(exc: grpc.RpcError, address: str,
                   subjects: Sequence[bytes | None]) -> OSError:
    """The OSError for a failed call. `subjects` are the names the call's operations
    were about (one for a plain call, one per operation for a batch); the failing one
    becomes the error's filename. An atomic batch failure also sets `batch_index`."""
    trailers = dict(exc.trailing_metadata() or ())
    message = exc.details() or ""
    if ERRNO_KEY not in trailers:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message:
            # gRPC's own message size limit (ours or the server's): the call, not the
            # server, is at fault, so this is not the metaserver's ENOSPC.
            return oserror(errno.E2BIG, f"message over the gRPC size limit ({message})",
                           subjects[0] if len(subjects) == 1 else None)
        code = _ERRNO_OF_CODE.get(exc.code(), errno.EIO)
        if exc.code() == grpc.StatusCode.UNAVAILABLE and "connect" in message.lower():
            code = errno.ECONNREFUSED
        return oserror(code, message, address)
    index = int(trailers[BATCH_INDEX_KEY]) if BATCH_INDEX_KEY in trailers else None
    if index is not None and 0 <= index < len(subjects):
        subject = subjects[index]
    else:
        subject = subjects[0] if len(subjects) == 1 else None
    return oserror(int(trailers[ERRNO_KEY]), message, subject, index)
