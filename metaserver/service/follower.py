"""The follower (`metaserver serve --follow PRIMARY`): plan, bootstrap, stream, apply,
reconnect; forward writes to the primary.

Before following, it compares its own state with the source's Status
(metaserver.replication.plan_follow): it streams on from its position, bootstraps when
nothing can be lost, and refuses a source of an older epoch (telling that stale primary
it was superseded) or one whose history left its own, unless started with --rejoin:
then it first writes the records after the fork to a rollback file
(metaserver.rollback). Writes are forwarded to the primary with the client's request id
and epoch and answered once the follower has applied their commit. While the follower
has not heard from the primary for LINK_TIMEOUT_S, writes fail at once with EROFS; a
forward whose outcome is unknown fails with EIO, which clients retry with the same
request id.

The gRPC metadata keys below carry change-log positions between clients, followers
and primaries (the client library names them again: it cannot import the service).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time

import grpc
from prometheus_client import REGISTRY, Counter, Gauge

from engines.contract import Engine
from metaserver import replication, rollback
from metaserver.channel import AUTHORIZATION, Credentials, open_channel
from metaserver.errors import FsError
from metaserver.replication import Action, OutOfOrder, Plan, Position, SourceState
from metaserver.service.errors import ERRNO_KEY, PrimaryAnswer
from metaserver.v1 import metadata_pb2_grpc, replication_pb2 as rpb, replication_pb2_grpc

log = logging.getLogger(__name__)

COMMIT_SEQ_KEY = "metaserver-commit-seq"
APPLIED_SEQ_KEY = "metaserver-applied-seq"
APPLIED_SEQ_END_KEY = "metaserver-applied-seq-end"   # a follower read: applied when it ended
MIN_SEQ_KEY = "metaserver-min-seq"
EPOCH_HEADER = "metaserver-epoch"
LINK_TIMEOUT_S = 3.0              # silence after which the follower calls the link down
FORWARD_TIMEOUT_S = 10.0
APPLY_WAIT_S = 10.0               # how long a forwarded write waits to be applied here
TRIM_EVERY_S = 30.0
STATUS_TIMEOUT_S = 5.0
FENCE_TIMEOUT_S = 5.0
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20),
                    ("grpc.max_send_message_length", 256 << 20)]

# Exported once this process runs a follower (registered then, not at import): a
# primary's /metrics has no replication gauges that would read 0 for ever.
APPLIED = Gauge("metaserver_replication_applied_seq", "Last source change record applied",
                registry=None)
PRIMARY_SEQ = Gauge("metaserver_replication_primary_seq", "Primary's newest sequence last heard",
                    registry=None)
LAG_RECORDS = Gauge("metaserver_replication_lag_records", "Records heard of but not applied",
                    registry=None)
LAG_SECONDS = Gauge("metaserver_replication_lag_seconds",
                    "How old the newest primary state held here is (grows while cut off)",
                    registry=None)
LAST_CONTACT = Gauge("metaserver_replication_last_contact_seconds",
                     "Seconds since the follower last heard from its primary", registry=None)
ROLLBACK_RECORDS = Gauge("metaserver_replication_rollback_records",
                         "Records after the fork point kept in the last rollback file",
                         registry=None)
RECORDS = Counter("metaserver_replication_records_applied_total", "Source records applied",
                  registry=None)
BYTES = Counter("metaserver_replication_bytes_received_total", "Stream bytes received",
                registry=None)
REPLICATION_METRICS = (APPLIED, PRIMARY_SEQ, LAG_RECORDS, LAG_SECONDS, LAST_CONTACT, ROLLBACK_RECORDS,
            RECORDS, BYTES)
_metrics_registered = threading.Lock()


def _export_metrics() -> None:
    if _metrics_registered.acquire(blocking=False):     # once per process, never released
        for metric in REPLICATION_METRICS:
            REGISTRY.register(metric)


class FollowRefused(Exception):
    """Following the source would lose data or go back in epochs; the reason says which."""


def _lineage(message) -> dict[int, int]:
    return dict(message.lineage)


class Follower:
    """Follows one primary: plan, bootstrap, stream, apply, reconnect; forwards writes."""

    def __init__(self, engine: Engine, primary: str, *, changelog_keep: int,
                 rejoin: bool = False, rollback_dir: str = "",
                 credentials: Credentials = Credentials()) -> None:
        self.engine = engine
        self.primary = primary
        self.changelog_keep = changelog_keep
        self.rejoin = rejoin
        self.rollback_dir = rollback_dir or os.path.abspath("metaserver-rollback")
        self.last_rollback: rollback.RollbackSummary | None = None
        self.refused: str = ""           # why following is refused, while it is
        self.credentials = credentials     # what this follower shows the primary (token, TLS)
        self._channel = open_channel(primary, credentials, _CHANNEL_OPTIONS)
        self._repl = replication_pb2_grpc.ReplicationStub(self._channel)
        self._meta = metadata_pb2_grpc.MetadataStub(self._channel)
        self._cond = threading.Condition()
        self._at = replication.position(engine)
        # While a batch commits, the engine already holds up to here and _at not yet.
        self._applying = self._at.seq if self._at else 0
        self.primary_seq = self._at.seq if self._at else 0
        self.source_superseded_by = 0
        self.bytes_received = 0
        self._heard = 0.0               # monotonic time of the last batch
        # (primary's newest seq, when heard): how fresh the applied state is
        self._heard_seqs: collections.deque[tuple[int, float]] = collections.deque(maxlen=4096)
        self._rate = collections.deque(maxlen=64)   # (monotonic, applied seq)
        self._planned = False
        self._stop = threading.Event()
        self._stream: grpc.Future | None = None
        self._thread = threading.Thread(target=self._run, name="metaserver-follower",
                                        daemon=True)
        _export_metrics()
        APPLIED.set_function(lambda: self.applied)
        PRIMARY_SEQ.set_function(lambda: self.primary_seq)
        LAG_RECORDS.set_function(lambda: self.lag_records)
        LAG_SECONDS.set_function(lambda: self.lag_seconds)
        LAST_CONTACT.set_function(lambda: self.last_contact_seconds)

    # --- state --------------------------------------------------------------------------
    @property
    def position(self) -> Position | None:
        return self._at

    @property
    def applied(self) -> int:
        return self._at.seq if self._at else 0

    @property
    def applied_at_most(self) -> int:
        """An upper bound of what a read of the local engine can see now: a batch being
        committed is visible before `applied` moves to its end."""
        return max(self.applied, self._applying)

    @property
    def epoch(self) -> int:
        return self._at.epoch if self._at else 0

    @property
    def connected(self) -> bool:
        return time.monotonic() - self._heard < LINK_TIMEOUT_S

    @property
    def last_contact_seconds(self) -> float:
        return time.monotonic() - self._heard if self._heard else 0.0

    @property
    def lag_records(self) -> int:
        return max(0, self.primary_seq - self.applied)

    @property
    def lag_seconds(self) -> float:
        """How long ago the primary was last in the state held here: 0 while caught up
        with a live link; while behind, the age of the newest batch whose primary
        sequence was already applied here; while cut off, time since last contact."""
        now, applied = time.monotonic(), self.applied
        with self._cond:
            heard = list(self._heard_seqs)
        if not heard:
            return 0.0 if self.connected or not self._heard else now - self._heard
        if applied >= heard[-1][0]:
            return 0.0 if self.connected else now - heard[-1][1]
        fresh_as_of = heard[0][1]
        for seq, when in heard:
            if seq > applied:
                break
            fresh_as_of = when
        return now - fresh_as_of

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
    def prepare(self, timeout: float) -> None:
        """At start: follow only where plan_follow allows it (FollowRefused otherwise),
        and hold a consistent state before serving: with no local position the source
        must answer now; with one, a source out of reach is retried in the background."""
        try:
            self._plan_and_act(timeout)
        except grpc.RpcError:
            if self._at is None:
                raise

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

    def source_state(self, timeout: float = STATUS_TIMEOUT_S) -> SourceState:
        reply = self._repl.Status(rpb.StatusRequest(), timeout=timeout)
        return SourceState(reply.role, reply.epoch, reply.superseded_by, _lineage(reply),
                           reply.namespace_id or None)

    def _plan_and_act(self, timeout: float | None = None) -> None:
        local = replication.local_state(self.engine)
        plan = replication.plan_follow(local, self.source_state())
        if plan.action is Action.REFUSE:
            if plan.stale_source:
                self._tell_stale_source(local.highest_epoch)
            self._refuse(plan.reason)
        if plan.action is Action.ROLLBACK:
            if not self.rejoin:
                self._refuse(f"{plan.reason}; restart with --rejoin to keep those records in "
                             f"a rollback file under {self.rollback_dir} and follow")
            self._write_rollback(local, plan)
        if plan.action is not Action.STREAM:
            log.warning("follower: %s: bootstrapping from %s", plan.reason, self.primary)
            self.bootstrap(timeout)
        self.refused = ""
        self._planned = True

    def _refuse(self, reason: str) -> None:
        self.refused = f"not following {self.primary}: {reason}"
        raise FollowRefused(self.refused)

    def _tell_stale_source(self, epoch: int) -> None:
        try:
            self._repl.Fence(rpb.FenceRequest(epoch=epoch, by="a node of a newer epoch"),
                             timeout=FENCE_TIMEOUT_S)
        except grpc.RpcError:
            pass     # it learns it from any client or node that reaches it

    def _write_rollback(self, local: replication.LocalState, plan: Plan) -> None:
        fork = plan.fork or Position(local.highest_epoch, 0)
        summary = rollback.write(self.engine, self.rollback_dir, epoch=fork.epoch,
                                 fork_seq=fork.seq, records=plan.diverged,
                                 local_records=plan.primary_records, source=self.primary)
        self.last_rollback = summary
        ROLLBACK_RECORDS.set(summary.records)
        log.error("follower: %s; %s records after the fork point (epoch %d, seq %d) are "
                  "not in %s's history: kept in rollback file %s (%d records one by one, "
                  "%d namespace keys); `metactl rollback list %s` shows them",
                  plan.reason, "an unknown number of" if plan.diverged < 0 else plan.diverged,
                  fork.epoch, fork.seq, self.primary, summary.path, summary.kept,
                  summary.keys, summary.path)

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
        replication.finish_bootstrap(self.engine, at, _lineage(first[0]))
        log.info("follower: bootstrapped %d keys from %s at seq %d epoch %d", count,
                 self.primary, at.seq, at.epoch)
        with self._cond:
            self._heard_seqs.clear()
            self.primary_seq = at.seq
        self._set_position(at)

    def _set_position(self, at: Position | None) -> None:
        with self._cond:
            self._at = at
            if at is None:
                self._applying = 0
            else:
                self.primary_seq = max(self.primary_seq, at.seq)
                self._rate.append((time.monotonic(), at.seq))
                while len(self._heard_seqs) > 1 and self._heard_seqs[1][0] <= at.seq:
                    self._heard_seqs.popleft()
            self._cond.notify_all()

    def _run(self) -> None:
        backoff, last_trim = 0.1, time.monotonic()
        while not self._stop.is_set():
            try:
                if not self._planned or self._at is None:
                    self._plan_and_act()
                self._follow()
                backoff = 0.1
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    log.warning("follower: %s; deciding again how to follow", exc.details())
                    self._planned = False
                    continue
                if not self._stop.is_set():
                    log.warning("follower: link to %s: %s %s", self.primary, code.name,
                                exc.details())
            except OutOfOrder as exc:
                log.error("follower: %s; deciding again how to follow", exc)
                self._planned = False
            except FollowRefused as exc:
                log.error("follower: %s", exc)
                backoff = max(backoff, 2.0)
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
                now = time.monotonic()
                self._heard = now
                self.bytes_received += batch.ByteSize()
                BYTES.inc(batch.ByteSize())
                if batch.epoch != at.epoch:
                    raise OutOfOrder(f"primary epoch {batch.epoch}, follower at {at.epoch}")
                with self._cond:
                    self.primary_seq = max(self.primary_seq, batch.primary_seq)
                    self._heard_seqs.append((batch.primary_seq, now))
                    self.source_superseded_by = batch.superseded_by
                self._applying = at.seq + len(batch.records)
                at = replication.apply_records(self.engine, at, batch.records)
                RECORDS.inc(len(batch.records))
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
        # The client's own token, if any: the primary decides on the client's rights.
        metadata = [(k, v) for k, v in context.invocation_metadata()
                    if k in (EPOCH_HEADER, AUTHORIZATION)]
        try:
            timeout = min(context.time_remaining() or FORWARD_TIMEOUT_S, FORWARD_TIMEOUT_S)
            reply, call = getattr(self._meta, rpc).with_call(request, timeout=timeout,
                                                              metadata=metadata)
        except grpc.RpcError as exc:
            if any(key == ERRNO_KEY for key, _ in exc.trailing_metadata() or ()):
                raise PrimaryAnswer(exc) from None          # the primary's own refusal
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
                                       (APPLIED_SEQ_KEY, str(self.applied)),
                                       (EPOCH_HEADER, str(self.epoch))])
        return reply

    def status(self) -> rpb.StatusReply:
        state = replication.local_state(self.engine)
        last = self.last_rollback
        return rpb.StatusReply(
            role="follower", epoch=self.epoch, last_seq=state.last_seq, primary=self.primary,
            connected=self.connected, applied_seq=self.applied, primary_seq=self.primary_seq,
            lag_records=self.lag_records, lag_seconds=self.lag_seconds,
            apply_rate=self.apply_rate(), bytes_received=self.bytes_received,
            ready=self._at is not None, superseded_by=self.source_superseded_by,
            last_contact_seconds=self.last_contact_seconds, lineage=state.lineage,
            namespace_id=state.namespace_id or 0,
            rollback_file=last.path if last else "", rollback_records=max(last.records, 0)
            if last else 0)
