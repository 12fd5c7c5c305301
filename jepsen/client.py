"""The client seam: invoke one metaserver API call and say how it ended.

A `Session` is one logical client process of a run. It holds a `metaserver.client.Client`
per server address (sharing one session token, so reads on a follower see this
process's own writes) and turns every call into a history completion: ok with its
result and change-log position, fail when the server answered with an errno (the call
certainly did not happen), info when the outcome is unknown (a timeout, a lost
connection, a server that never answered). Reads have no effect, so a read that did not
complete is a fail, never an info.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import grpc

from jepsen.history import FAIL, INFO, INVOKE, OK, Recorder
from metaserver.client import Client, RetryPolicy
from metaserver.client.errors import ERRNO_KEY
from metaserver.client.session import (APPLIED_SEQ_END_KEY, APPLIED_SEQ_KEY, COMMIT_SEQ_KEY,
                                       EPOCH_KEY)
from metaserver.types import READDIR_MAX, Attr, Entry

READS = frozenset({"getattr", "lookup", "readdir", "getxattr", "listxattr", "readlink",
                   "statfs"})
# The server's own answers that mean "not done"; anything else may have been applied.
_DEFINITE = frozenset({errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EINVAL,
                       errno.ENOTEMPTY, errno.EROFS, errno.EMLINK, errno.ENAMETOOLONG,
                       errno.EPERM, errno.EACCES, errno.ENODATA, errno.E2BIG, errno.ENOSPC,
                       errno.EXDEV, errno.ELOOP, errno.EOPNOTSUPP})


class _LastTrailers(grpc.UnaryUnaryClientInterceptor):
    """Keeps the trailers of the newest call (a Session makes one call at a time)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def intercept_unary_unary(self, continuation, details, request):
        outcome = continuation(details, request)
        try:
            self.values = dict(outcome.trailing_metadata() or ())
        except Exception:        # no trailers on a call that never reached a server
            self.values = {}
        return outcome


class Session:
    def __init__(self, process: int | str, recorder: Recorder, *, timeout: float = 3.0,
                 retry: RetryPolicy = RetryPolicy(attempts=3, total_seconds=6.0)) -> None:
        self.process = process
        self.recorder = recorder
        self.timeout, self.retry = timeout, retry
        self._clients: dict[str, tuple[Client, _LastTrailers]] = {}

    def close(self) -> None:
        for client, _ in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, address: str) -> tuple[Client, _LastTrailers]:
        if address not in self._clients:
            trailers = _LastTrailers()
            # One session across servers: a new server's client starts where it stands.
            token = max((c.session_token for c, _ in self._clients.values()), default=None)
            self._clients[address] = (Client(address, timeout=self.timeout, retry=self.retry,
                                             interceptors=[trailers], session_token=token),
                                      trailers)
        return self._clients[address]

    def invoke(self, node: str, address: str, f: str, args: dict[str, Any]):
        """Record the invocation, make the call, record and return its completion."""
        self.recorder.record(self.process, INVOKE, f, {"args": args}, node=node)
        client, trailers = self._client(address)
        trailers.values = {}
        try:
            result = call(client, f, args)
        except OSError as exc:
            return self.recorder.record(self.process, _outcome(f, exc, trailers.values), f,
                                        {"args": args}, node=node,
                                        error=errno.errorcode.get(exc.errno or 0, "EIO"))
        except Exception as exc:       # a harness must record, never die, on a surprise
            return self.recorder.record(self.process, FAIL if f in READS else INFO, f,
                                        {"args": args}, node=node, error=type(exc).__name__)
        self._share_session(client)
        value = {"args": args, "result": plain_result(result)}
        end = trailers.values.get(APPLIED_SEQ_END_KEY, "")
        if f in READS and end.isdigit():
            value["seq_end"] = int(end)    # a follower read saw a state from seq to this
        return self.recorder.record(self.process, OK, f, value, node=node,
                                    seq=_position(f, trailers.values))

    def _share_session(self, client: Client) -> None:
        token = client.session_token
        for other, _ in self._clients.values():
            if other is not client:
                other.advance_session(token)


def call(client: Client, f: str, args: dict[str, Any]) -> Any:
    """Make one call. A listing is one page, hence one snapshot: the client library's
    readdir fetches pages in separate calls, and their union is no state at all."""
    if f == "readdir":
        page = client.readdir_page(args["ino"], limit=READDIR_MAX)
        if page.cursor:
            raise OSError(errno.EFBIG, f"directory {args['ino']} holds more than "
                          f"{READDIR_MAX} entries: one page cannot list it")
        return page.entries
    return getattr(client, f)(**wire_args(args))


def _outcome(f: str, exc: OSError, trailers: dict[str, str]) -> str:
    if f in READS:
        return FAIL
    answered = ERRNO_KEY in trailers
    return FAIL if answered and exc.errno in _DEFINITE else INFO


def _position(f: str, trailers: dict[str, str]) -> tuple[int, int] | None:
    key = APPLIED_SEQ_KEY if f in READS else COMMIT_SEQ_KEY
    epoch, seq = trailers.get(EPOCH_KEY), trailers.get(key)
    if seq is None or not seq.isdigit() or int(seq) == 0:
        return None
    return (int(epoch) if epoch and epoch.isdigit() else 0, int(seq))


def wire_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: os.fsencode(v) if isinstance(v, str) and k in ("name", "new_name", "target")
            else v for k, v in args.items()}


def plain_result(result: Any) -> Any:
    if isinstance(result, Attr):
        return {"ino": result.ino, "type": int(result.type), "mode": result.mode,
                "size": result.size, "nlink": result.nlink, "uid": result.uid,
                "gid": result.gid}
    if isinstance(result, Entry):
        out = {"ino": result.ino, "type": int(result.type)}
        if result.attr is not None:
            out["nlink"] = result.attr.nlink
        return out
    if isinstance(result, list):
        return sorted(os.fsdecode(e.name) if isinstance(e, Entry) else plain_result(e)
                      for e in result)
    if isinstance(result, bytes):
        return os.fsdecode(result)
    return result
