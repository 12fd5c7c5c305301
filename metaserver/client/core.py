"""Client: one gRPC channel to a metaserver, os-like calls, batches, retries.

Every mutation carries a request id (8 random bytes naming this client + an 8-byte
big-endian counter). A transient failure is retried with the very same request, so
the server replays the first outcome instead of applying the mutation twice. Every
call also carries the client's session (metaserver.client.session).
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc
import tenacity

from metaserver.channel import Credentials, open_channel
from metaserver.client import errors, wire
from metaserver.client.operations import Name, Operations
from metaserver.client.session import SessionTimeout, SessionToken, SessionTracker
from metaserver.types import ROOT_INO, Entry, FileType
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc as pb_grpc

_CHANNEL_OPTIONS = [
    # A batch of 10000 results with attributes can pass gRPC's 4 MiB default.
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
]


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: jittered exponential backoff, stopping
    after `attempts` tries or `total_seconds`, whichever comes first."""
    attempts: int = 5
    total_seconds: float = 20.0
    initial_backoff: float = 0.05
    max_backoff: float = 2.0

    def run(self, fn, mutating: bool, *args, **kwargs):
        """fn(*args, **kwargs), retrying transient gRPC failures. The first attempt
        runs bare: a call that succeeds pays nothing for the retry machinery."""
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            if self.attempts < 2 or not errors.is_transient(exc, mutating):
                raise
        wait = tenacity.wait_random_exponential(multiplier=self.initial_backoff,
                                                max=self.max_backoff)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: errors.is_transient(e, mutating)),
            stop=(tenacity.stop_after_attempt(self.attempts - 1)
                  | tenacity.stop_after_delay(self.total_seconds)),
            wait=wait,
            # tenacity's first attempt is the call's second: back off before it too.
            before=lambda state: time.sleep(wait(state)) if state.attempt_number == 1 else None,
            reraise=True)
        return retrying(fn, *args, **kwargs)


class Client(Operations):
    """A metaserver at `address` ("host:port"). Errors are OSError subclasses with
    `.errno` set; `timeout` bounds each attempt of each call, in seconds.

    Session consistency (`session_consistency`, on by default): every call asks for
    the newest (epoch, sequence) this client has seen in any reply, `session_token`, so
    a follower answers only once it has applied that far: the client reads its own
    writes and its reads never go back in time, whichever servers it talks to (hand
    the token to another Client, `session_token=` or `advance_session`, to extend the
    session to it). It costs nothing on a primary or a follower that is caught up; a
    follower behind waits, within `timeout`, and if that runs out the call fails with
    SessionTimeout (a TimeoutError, errno ETIMEDOUT, naming the awaited sequence)
    rather than answer from an older state. Off, a follower answers from whatever it
    has applied. Either way every call carries the newest epoch seen, which makes a
    primary that was superseded by a failover refuse writes.

    Security: `token` (else $METASERVER_TOKEN, else the file $METASERVER_TOKEN_FILE
    names) is sent with every call; `credentials` adds TLS (metaserver.channel).
    """

    def __init__(self, address: str, *, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(),
                 interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
                 session_consistency: bool = True,
                 session_token: SessionToken | str | None = None,
                 token: str | None = None,
                 credentials: Credentials | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.retry = retry
        self._session = SessionTracker(session_consistency)
        if session_token is not None:
            self.advance_session(session_token)
        if credentials is None:
            credentials = Credentials.resolve(token)
        elif token is not None:
            credentials = dataclasses.replace(credentials, token=token)
        self._channel = open_channel(address, credentials, _CHANNEL_OPTIONS, interceptors)
        self._stub = pb_grpc.MetadataStub(self._channel)
        self._client_id = os.urandom(8)
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def session_token(self) -> SessionToken:
        """The newest (epoch, sequence) seen in any reply, or given to this client."""
        return self._session.token

    @property
    def last_commit(self) -> SessionToken | None:
        """(epoch, commit sequence) of the newest mutation reply; None before one."""
        return self._session.last_commit

    def advance_session(self, token: SessionToken | str) -> None:
        """Extend the session to `token` (a SessionToken or its text, `[EPOCH:]SEQ`):
        calls from now on see at least that state. Tokens only move forward."""
        self._session.advance(SessionToken.parse(token) if isinstance(token, str) else token)

    def new_request_id(self) -> bytes:
        with self._counter_lock:
            seq = next(self._counter)
        return self._client_id + seq.to_bytes(8, "big")

    # --- low level ----------------------------------------------------------------------
    def call(self, op: str, /, **fields):
        """Run operation `op` (its field name in the API's `Operation`) with raw request
        fields; a mutation without a `request_id` field gets a fresh one."""
        return self._op(op, None, **fields)

    def _op(self, op: str, subject: bytes | None, /, **fields):
        call = wire.CALLS[op]
        if call.mutating:
            fields.setdefault("request_id", self.new_request_id())
        return call.result(self._rpc(call.rpc, _message(call.request, subject, fields),
                                     call.mutating, [subject]))

    def _rpc(self, rpc: str, request, mutating: bool, subjects: Sequence[bytes | None]):
        method = getattr(self._stub, rpc).with_call
        awaited: SessionToken | None = None
        maybe_applied = False       # an earlier attempt of this mutation may have run

        def attempt():
            nonlocal awaited, maybe_applied
            awaited, headers = self._session.headers()   # anew: a retry sends the newest
            try:
                reply, call = method(request, timeout=self.timeout, metadata=headers)
            except grpc.RpcError as exc:
                self._session.observe(exc.trailing_metadata())
                if mutating:
                    maybe_applied = maybe_applied or errors.outcome_unknown(exc)
                raise
            self._session.observe(call.trailing_metadata())
            return reply
        try:
            return self.retry.run(attempt, mutating)
        except grpc.RpcError as exc:
            error = errors.from_rpc_error(exc, self.address, subjects)
            if maybe_applied and error.errno == errno.EROFS:
                # A read-only answer never looks at the request id: it cannot say that
                # an earlier attempt, whose answer was lost, did not commit.
                error = errors.oserror(errno.EIO, f"outcome unknown: an attempt whose "
                                       f"answer was lost may have committed, and the retry "
                                       f"was refused ({error.strerror}); retry with the "
                                       f"same request id", error.filename, error.batch_index)
            if awaited is not None and error.errno == errno.ETIMEDOUT and \
                    errors.answered(exc):
                error = SessionTimeout(error.strerror, error.filename, awaited,
                                       error.batch_index)
            raise error from None

    # --- more than one call -------------------------------------------------------------
    def readdir(self, ino: int, *, with_attrs: bool = False,
                page_size: int = 1000) -> Iterator[Entry]:
        """All entries of directory `ino` in name order, fetched a page at a time."""
        cursor = b""
        while True:
            page = self.readdir_page(ino, cursor, page_size, with_attrs=with_attrs)
            yield from page.entries
            cursor = page.cursor
            if not cursor:
                return

    def makedirs(self, path: Name, mode: int = 0o755, exist_ok: bool = False) -> Entry:
        """Create directory `path` (from the root) and any missing parents, like
        os.makedirs; returns the entry of the last one."""
        path = os.fsencode(path)
        entry = Entry(b"/", ROOT_INO, FileType.DIRECTORY)
        created = False
        for part in (p for p in path.split(b"/") if p not in (b"", b".")):
            try:
                entry, created = self.lookup(entry.ino, part), False
            except FileNotFoundError:
                try:
                    entry, created = self.mkdir(entry.ino, part, mode), True
                except FileExistsError:  # another client made it meanwhile
                    entry, created = self.lookup(entry.ino, part), False
            if entry.type != FileType.DIRECTORY:
                raise errors.oserror(errno.ENOTDIR, "", path)
        if not created and not exist_ok:
            raise errors.oserror(errno.EEXIST, "", path)
        return entry

    def echo(self, payload: bytes) -> bytes:
        return self._rpc("Echo", pb.EchoRequest(payload=payload), False, [None]).payload

    def batch(self, atomic: bool = False) -> Batch:
        return Batch(self, atomic)


class Batch(Operations):
    """Operations queued for one Batch RPC; each method queues and returns the batch.

    run() returns the results in order. Independent (atomic=False): each result is the
    operation's value or its OSError (with `batch_index`). Atomic: all or nothing; the
    values, or the failing operation's OSError raised, with `batch_index` set.
    """

    def __init__(self, client: Client, atomic: bool) -> None:
        self.client = client
        self.atomic = atomic
        self._ops: list[tuple[str, bytes | None, pb.Operation]] = []

    def __len__(self) -> int:
        return len(self._ops)

    def _op(self, op: str, subject: bytes | None, /, **fields) -> Batch:
        call = wire.CALLS[op]
        # An atomic batch is idempotent by its own id; ids inside it are ignored.
        if call.mutating and not self.atomic:
            fields["request_id"] = self.client.new_request_id()
        request = _message(call.request, subject, fields)
        self._ops.append((op, subject, pb.Operation(**{op: request})))
        return self

    def run(self) -> list:
        if not self._ops:
            return []
        request = pb.BatchRequest(ops=[operation for _, _, operation in self._ops],
                                  atomic=self.atomic,
                                  request_id=self.client.new_request_id() if self.atomic else b"")
        reply = self.client._rpc("Batch", request, True,
                                 [subject for _, subject, _ in self._ops])
        return [self._result(index, result) for index, result in enumerate(reply.results)]

    def _result(self, index: int, result: pb.OperationResult):
        op, subject, _ = self._ops[index]
        kind = result.WhichOneof("result")
        if kind == "error":
            return errors.oserror(result.error.errno, result.error.message, subject, index)
        return wire.CALLS[op].result(getattr(result, kind))


def _message(request_type: type, subject: bytes | None, fields: dict):
    """The request message; a value protobuf cannot carry (negative, too large) is an
    invalid argument, reported like the server would."""
    try:
        return request_type(**fields)
    except ValueError as exc:
        raise errors.oserror(errno.EINVAL, str(exc), subject) from None
