"""Replication over gRPC: the primary's Replication service, the follower's streaming
thread, and the Node that routes each Metadata call by this server's role.

Primary: Stream serves change records from any retained position (heartbeats when idle),
Snapshot a consistent namespace scan; mutation replies carry `metaserver-commit-seq`.

Follower (`metaserver serve --follow PRIMARY`): bootstraps from a Snapshot, then streams
and applies records (metaserver.replication: whole records, position in the same local
transaction). Reads run locally and carry `metaserver-applied-seq`; a request header
`metaserver-min-seq: S` waits until S is applied. Writes are forwarded to the primary
with the client's request id and answered once the follower has applied their commit.
While the follower has not heard from the primary for LINK_TIMEOUT_S, writes fail at
once with EROFS (FAILED_PRECONDITION); a forward whose outcome is unknown (the link broke
during the call) fails with EIO (UNAVAILABLE), which clients retry with the same request
id. Reads keep working either way.

Epochs: a promoted follower becomes primary with epoch + 1. A follower refuses a primary
with an older epoch; a primary that sees a follower of a newer epoch is fenced (refuses
writes and streams) from then on.
"""

from __future__ import annotations

import collections
import errno
import logging
import threading
import time

import grpc
from prometheus_client import Counter, Gauge

from engines.contract import Engine
from metaserver import replication
from metaserver.errors import FsError
from metaserver.ops import OPS
from metaserver.replication import OutOfOrder, Position, PositionGone
from metaserver.service.errors import ERRNO_KEY
from metaserver.v1 import metadata_pb2_grpc, replication_pb2 as rpb, replication_pb2_grpc

log = logging.getLogger(__name__)

COMMIT_SEQ_KEY = "metaserver-commit-seq"
APPLIED_SEQ_KEY = "metaserver-applied-seq"
MIN_SEQ_KEY = "metaserver-min-seq"
STREAM_RECORDS = 2000             # records per ChangeBatch at most
STREAM_BYTES = 4 << 20
POLL_S = 0.005                    # how often an idle stream looks for new records
HEARTBEAT_S = 0.5
LINK_TIMEOUT_S = 3.0              # silence after which the follower calls the link down
FORWARD_TIMEOUT_S = 10.0
APPLY_WAIT_S = 10.0               # how long a forwarded write waits to be applied here
MAX_MIN_SEQ_WAIT_S = 30.0
TRIM_EVERY_S = 30.0
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20),
                    ("grpc.max_send_message_length", 256 << 20)]

APPLIED = Gauge("metaserver_replication_applied_seq", "Last source change record applied")
PRIMARY_SEQ = Gauge("metaserver_replication_primary_seq", "Primary's newest sequence last heard")
LAG_RECORDS = Gauge("metaserver_replication_lag_records", "Records heard of but not applied")
LAG_SECONDS = Gauge("metaserver_replication_lag_seconds",
                    "Seconds since the follower last had every record it heard of")
RECORDS = Counter("metaserver_replication_records_applied_total", "Source records applied")
BYTES = Counter("metaserver_replication_bytes_received_total", "Stream bytes received")


class Follower:
    """Follows one primary: bootstrap, stream, apply, reconnect; forwards writes."""

    def __init__(self, engine: Engine, primary: str, *, changelog_keep: int) -> None:
        self.engine = engine
        self.primary = primary
        self.changelog_keep = changelog_keep
        self._channel = grpc.insecure_channel(primary, options=_CHANNEL_OPTIONS)
        self._repl = replication_pb2_grpc.ReplicationStub(self._channel)
        self._meta = metadata_pb2_grpc.MetadataStub(self._channel)
        self._cond = threading.Condition()
        self._at = replication.position(engine)
        self.primary_seq = self._at.seq if self._at else 0
        self.bytes_received = 0
        self._heard = 0.0               # monotonic time of the last batch
        self._caught_up = time.monotonic()
        self._rate = collections.deque(maxlen=64)   # (monotonic, applied seq)
        self._stop = threading.Event()
        self._stream: grpc.Future | None = None
        self._thread = threading.Thread(target=self._run, name="metaserver-follower",
                                        daemon=True)
        APPLIED.set_function(lambda: self.applied)
        PRIMARY_SEQ.set_function(lambda: self.primary_seq)
        LAG_RECORDS.set_function(lambda: self.lag_records)
        LAG_SECONDS.set_function(lambda: self.lag_seconds)

    # --- state --------------------------------------------------------------------------
    @property
    def position(self) -> Position | None:
        return self._at

    @property
    def applied(self) -> int:
        return self._at.seq if self._at else 0

    @property
    def connected(self) -> bool:
        return time.monotonic() - self._heard < LINK_TIMEOUT_S

    @property
    def lag_records(self) -> int:
        return max(0, self.primary_seq - self.applied)

    @property
    def lag_seconds(self) -> float:
        return 0.0 if self.lag_records == 0 else time.monotonic() - self._caught_up

    def apply_rate(self) -> float:
        samples = [s for s in self._rate if time.monotonic() - s[0] < 5]
        if len(samples) < 2 or samples[-1][0] == samples[0][0]:
            return 0.0
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])

    def wait_applied(self, seq: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.applied >= seq and self._at is not None,
                                       timeout)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        threading.Thread(target=self._watchdog, name="metaserver-follower-watchdog",
                         daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        if self._thread.is_alive():
            self._thread.join()
        self._channel.close()

    def bootstrap(self, timeout: float | None = None) -> None:
        """Replace the local namespace with a snapshot of the primary's."""
        self._set_position(None)
        replication.clear_position(self.engine)
        replication.wipe_namespace(self.engine)
        chunks = self._repl.Snapshot(rpb.SnapshotRequest(), timeout=timeout)
        first: list[rpb.SnapshotChunk] = []

        def pairs():
            for chunk in chunks:
                if not first:
                    first.append(chunk)
                self.bytes_received += chunk.ByteSize()
                yield from zip(chunk.keys, chunk.values)

        count = replication.load_pairs(self.engine, pairs())
        at = Position(first[0].epoch, first[0].seq)
        replication.finish_bootstrap(self.engine, at)
        log.info("follower: bootstrapped %d keys from %s at seq %d epoch %d", count,
                 self.primary, at.seq, at.epoch)
        self._set_position(at)

    def _set_position(self, at: Position | None) -> None:
        with self._cond:
            self._at = at
            if at is not None:
                self.primary_seq = max(self.primary_seq, at.seq)
                self._rate.append((time.monotonic(), at.seq))
                if at.seq >= self.primary_seq:
                    self._caught_up = time.monotonic()
            self._cond.notify_all()

    def _run(self) -> None:
        backoff, last_trim = 0.1, time.monotonic()
        while not self._stop.is_set():
            try:
                if self._at is None:
                    self.bootstrap()
                self._follow()
                backoff = 0.1
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    log.warning("follower: %s; bootstrapping again", exc.details())
                    self._set_position(None)
                    continue
                if not self._stop.is_set():
                    log.warning("follower: link to %s: %s %s", self.primary, code.name,
                                exc.details())
            except OutOfOrder as exc:
                log.error("follower: %s; bootstrapping again", exc)
                self._set_position(None)
            except Exception:
                log.exception("follower: apply failed; retrying")
            if time.monotonic() - last_trim > TRIM_EVERY_S:
                last_trim = time.monotonic()
                self.engine.trim_changes(self.changelog_keep)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _follow(self) -> None:
        at = self._at
        stream = self._repl.Stream(rpb.StreamRequest(from_seq=at.seq + 1, epoch=at.epoch))
        self._stream = stream
        try:
            for batch in stream:
                self._heard = time.monotonic()
                self.bytes_received += batch.ByteSize()
                BYTES.inc(batch.ByteSize())
                if batch.epoch != at.epoch:
                    raise OutOfOrder(f"primary epoch {batch.epoch}, follower at {at.epoch}")
                at = replication.apply_records(self.engine, at, batch.records)
                RECORDS.inc(len(batch.records))
                with self._cond:
                    self.primary_seq = max(batch.primary_seq, at.seq)
                self._set_position(at)
                if self._stop.is_set():
                    return
        finally:
            self._stream = None
            stream.cancel()

    def _watchdog(self) -> None:
        """Cancel a stream that went silent (a blackholed link never errors by itself)."""
        while not self._stop.wait(LINK_TIMEOUT_S / 3):
            stream = self._stream
            if stream is not None and not self.connected and self._heard:
                stream.cancel()

    # --- forwarded writes ---------------------------------------------------------------
    def forward(self, rpc: str, request, context: grpc.ServicerContext):
        """Run a write on the primary; answer once this follower has applied it."""
        if not self.connected:
            raise FsError(errno.EROFS, f"primary {self.primary} unreachable: writes are "
                          "refused until the link is back; reads are served")
        try:
            timeout = min(context.time_remaining() or FORWARD_TIMEOUT_S, FORWARD_TIMEOUT_S)
            reply, call = getattr(self._meta, rpc).with_call(request, timeout=timeout)
        except grpc.RpcError as exc:
            trailers = tuple(exc.trailing_metadata() or ())
            if any(key == ERRNO_KEY for key, _ in trailers):   # the primary's own answer
                context.set_trailing_metadata(trailers)
                context.abort(exc.code(), exc.details())
            if exc.code() == grpc.StatusCode.UNAVAILABLE and not self.connected:
                raise FsError(errno.EROFS, f"primary {self.primary} unreachable: writes are "
                              "refused until the link is back; reads are served") from None
            raise FsError(errno.EIO, f"forwarding to primary {self.primary}: "
                          f"{exc.code().name}; the outcome is unknown, retry with the same "
                          "request id") from None
        seq = int(dict(call.trailing_metadata() or ()).get(COMMIT_SEQ_KEY, 0))
        if not self.wait_applied(seq, min(context.time_remaining() or APPLY_WAIT_S,
                                          APPLY_WAIT_S)):
            raise FsError(errno.EIO, f"committed on the primary at sequence {seq} but not "
                          "applied here yet; retry with the same request id")
        context.set_trailing_metadata([(COMMIT_SEQ_KEY, str(seq)),
                                       (APPLIED_SEQ_KEY, str(self.applied))])
        return reply

    def status(self) -> rpb.StatusReply:
        return rpb.StatusReply(
            role="follower", epoch=self._at.epoch if self._at else 0,
            last_seq=self.engine.last_seq(), primary=self.primary, connected=self.connected,
            applied_seq=self.applied, primary_seq=self.primary_seq,
            lag_records=self.lag_records, lag_seconds=self.lag_seconds,
            apply_rate=self.apply_rate(), bytes_received=self.bytes_received,
            ready=self._at is not None)


class Node:
    """This server's role, and what each Metadata call does because of it."""

    def __init__(self, engine: Engine, follower: Follower | None,
                 on_promote=lambda: None) -> None:
        self.engine = engine
        self.follower = follower
        self._on_promote = on_promote
        self.epoch, self.fenced = replication.epoch_of(engine)
        self._lock = threading.Lock()

    def run(self, rpc: str, mutating: bool, request, context: grpc.ServicerContext,
            local, take_commit_seq):
        """Answer one call: forward a follower's write, else run `local()` here."""
        follower = self.follower
        if follower is not None:
            if mutating:
                return follower.forward(rpc, request, context)
            self._wait_min_seq(follower, context)
            applied = follower.applied
            reply = local()
            context.set_trailing_metadata([(APPLIED_SEQ_KEY, str(applied))])
            return reply
        if mutating and self.fenced:
            raise FsError(errno.EROFS, f"this primary (epoch {self.epoch}) was superseded "
                          "by a promoted follower: writes are refused")
        take_commit_seq()
        reply = local()
        seq = take_commit_seq()
        if seq:
            context.set_trailing_metadata([(COMMIT_SEQ_KEY, str(seq))])
        return reply

    @staticmethod
    def _wait_min_seq(follower: Follower, context: grpc.ServicerContext) -> None:
        wanted = dict(context.invocation_metadata()).get(MIN_SEQ_KEY)
        if follower.position is None:
            raise FsError(errno.EAGAIN, "follower is bootstrapping: no consistent state yet")
        if not wanted:
            return
        if not wanted.isdigit():
            raise FsError(errno.EINVAL, f"{MIN_SEQ_KEY} must be a sequence number")
        timeout = min(context.time_remaining() or MAX_MIN_SEQ_WAIT_S, MAX_MIN_SEQ_WAIT_S)
        if not follower.wait_applied(int(wanted), timeout):
            raise FsError(errno.EAGAIN, f"sequence {wanted} not applied yet (applied "
                          f"{follower.applied})")

    def fence(self) -> None:
        with self._lock:
            if not self.fenced:
                log.error("primary: a follower has seen a newer epoch than %d: fenced, "
                          "refusing writes", self.epoch)
                replication.set_epoch(self.engine, self.epoch, fenced=True)
                self.fenced = True

    def promote(self) -> int:
        with self._lock:
            follower = self.follower
            if follower is None:
                raise FsError(errno.EINVAL, "this server is a primary already")
            follower.stop()
            self.epoch = replication.promote(self.engine)
            self.fenced = False
            self.follower = None
            self._on_promote()
            log.warning("promoted to primary with epoch %d at seq %d", self.epoch,
                        self.engine.last_seq())
            return self.epoch

    def status(self) -> rpb.StatusReply:
        if self.follower is not None:
            return self.follower.status()
        return rpb.StatusReply(role="fenced" if self.fenced else "primary", epoch=self.epoch,
                               last_seq=self.engine.last_seq(), ready=True)


class ReplicationServicer(replication_pb2_grpc.ReplicationServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def _check_primary(self, context: grpc.ServicerContext, follower_epoch: int) -> None:
        node = self.node
        if node.follower is not None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "this server is a follower; follow its primary instead")
        if follower_epoch > node.epoch:
            node.fence()
        if node.fenced:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"this primary's epoch {node.epoch} is stale: it was superseded")

    def Stream(self, request: rpb.StreamRequest, context: grpc.ServicerContext):
        self._check_primary(context, request.epoch)
        if request.epoch != self.node.epoch and request.from_seq > 1:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"position of epoch {request.epoch} "
                          f"is not in this primary's log (epoch {self.node.epoch})")
        engine, epoch = self.node.engine, self.node.epoch
        next_seq, beat = max(request.from_seq, 1), 0.0
        while context.is_active() and not self.node.fenced:
            try:
                records = replication.read_changes(engine, next_seq, STREAM_RECORDS,
                                                   STREAM_BYTES)
            except PositionGone as exc:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            now = time.monotonic()
            if records or now - beat >= HEARTBEAT_S:
                yield rpb.ChangeBatch(epoch=epoch, primary_seq=next_seq - 1 + len(records)
                                      if records else engine.last_seq(), records=records)
                next_seq += len(records)
                beat = now
            if not records:
                time.sleep(POLL_S)

    def Snapshot(self, request: rpb.SnapshotRequest, context: grpc.ServicerContext):
        self._check_primary(context, 0)
        seq, pairs = replication.snapshot(self.node.engine)
        chunk = rpb.SnapshotChunk(seq=seq, epoch=self.node.epoch)
        size = 0
        for key, value in pairs:
            chunk.keys.append(key)
            chunk.values.append(value)
            size += len(key) + len(value)
            if size >= STREAM_BYTES:
                yield chunk
                chunk, size = rpb.SnapshotChunk(seq=seq, epoch=self.node.epoch), 0
        yield chunk

    def Status(self, request: rpb.StatusRequest, context: grpc.ServicerContext):
        return self.node.status()

    def Promote(self, request: rpb.PromoteRequest, context: grpc.ServicerContext):
        try:
            epoch = self.node.promote()
        except (FsError, OutOfOrder) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return rpb.PromoteReply(epoch=epoch, seq=self.node.engine.last_seq())


def is_mutating(op: str) -> bool:
    return OPS[op].mutating
