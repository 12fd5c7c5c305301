"""Replication over gRPC: the primary's Replication service, the follower's streaming
thread, and the Node that routes each Metadata call by this server's role.

Primary: Stream serves change records from any retained position (heartbeats when idle;
every batch carries the primary's newest sequence and clock), Snapshot a consistent
namespace scan with the lineage; mutation replies carry `metaserver-commit-seq`.

Follower (`metaserver serve --follow PRIMARY`): before following, it compares its own
state with the source's Status (metaserver.replication.plan_follow): it streams on from
its position, bootstraps when nothing can be lost, and refuses a source of an older epoch
(telling that stale primary it was superseded) or one whose history left its own, unless
started with --rejoin: then it first writes the records after the fork to a rollback file
(metaserver.rollback). Reads run locally and carry `metaserver-applied-seq`; a request
header `metaserver-min-seq: S` (with `metaserver-epoch`) waits until S is applied, else
ETIMEDOUT. Writes are forwarded to the primary with the client's request id and epoch
and answered once the follower has applied their commit. While the follower has not heard
from the primary for LINK_TIMEOUT_S, writes fail at once with EROFS; a forward whose
outcome is unknown fails with EIO, which clients retry with the same request id.

Epochs: every reply carries `metaserver-epoch`. A primary that hears of a newer epoch (a
client's `metaserver-epoch` header, a Fence call, a follower's Stream) is fenced: the
fence commits in its engine, every mutation reads the epoch key, so it refuses writes from
that commit on, and its log's end is final. Promote: planned switchover fences the old
primary, waits until its last record is applied here, then takes epoch + 1 (no loss);
forced failover (old primary unreachable, --force) promotes at the position it has and
keeps telling the old primary until it hears.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time

import grpc
from prometheus_client import Counter, Gauge

from engines.contract import Engine
from metaserver import replication, rollback
from metaserver.channel import AUTHORIZATION, Credentials, open_channel
from metaserver.errors import FsError
from metaserver.replication import Action, OutOfOrder, Plan, Position, PositionGone, SourceState
from metaserver.service.errors import ERRNO_KEY
from metaserver.v1 import metadata_pb2_grpc, replication_pb2 as rpb, replication_pb2_grpc

log = logging.getLogger(__name__)

COMMIT_SEQ_KEY = "metaserver-commit-seq"
APPLIED_SEQ_KEY = "metaserver-applied-seq"
APPLIED_SEQ_END_KEY = "metaserver-applied-seq-end"   # a follower read: applied when it ended
MIN_SEQ_KEY = "metaserver-min-seq"
EPOCH_HEADER = "metaserver-epoch"
STREAM_RECORDS = 2000             # records per ChangeBatch at most
STREAM_BYTES = 4 << 20
HEARTBEAT_S = 0.5
LINK_TIMEOUT_S = 3.0              # silence after which the follower calls the link down
FORWARD_TIMEOUT_S = 10.0
APPLY_WAIT_S = 10.0               # how long a forwarded write waits to be applied here
MAX_MIN_SEQ_WAIT_S = 30.0
TRIM_EVERY_S = 30.0
STATUS_TIMEOUT_S = 5.0
FENCE_TIMEOUT_S = 5.0
FENCE_RETRY_S = 2.0
PROMOTE_WAIT_S = 30.0
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20),
                    ("grpc.max_send_message_length", 256 << 20)]

APPLIED = Gauge("metaserver_replication_applied_seq", "Last source change record applied")
PRIMARY_SEQ = Gauge("metaserver_replication_primary_seq", "Primary's newest sequence last heard")
LAG_RECORDS = Gauge("metaserver_replication_lag_records", "Records heard of but not applied")
LAG_SECONDS = Gauge("metaserver_replication_lag_seconds",
                    "How old the newest primary state held here is (grows while cut off)")
LAST_CONTACT = Gauge("metaserver_replication_last_contact_seconds",
                     "Seconds since the follower last heard from its primary")
ROLLBACK_RECORDS = Gauge("metaserver_replication_rollback_records",
                         "Records after the fork point kept in the last rollback file")
RECORDS = Counter("metaserver_replication_records_applied_total", "Source records applied")
BYTES = Counter("metaserver_replication_bytes_received_total", "Stream bytes received")


class FollowRefused(Exception):
    """Following the source would lose data or go back in epochs; the reason says which."""


def _lineage(message) -> dict[int, int]:
    return dict(message.lineage)


def _int_header(context: grpc.ServicerContext, key: str) -> int:
    value = dict(context.invocation_metadata()).get(key)
    if value is None:
        return 0
    if not value.isdigit():
        raise FsError(errno.EINVAL, f"{key} must be a number")
    return int(value)


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


class Node:
    """This server's role, and what each Metadata call does because of it."""

    def __init__(self, engine: Engine, follower: Follower | None,
                 on_promote=lambda: None) -> None:
        self.engine = engine
        self.follower = follower
        self._on_promote = on_promote
        self.state = replication.epoch_state(engine)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def epoch(self) -> int:
        return self.follower.epoch if self.follower is not None else self.state.epoch

    def run(self, rpc: str, mutating: bool, request, context: grpc.ServicerContext,
            local, take_commit_seq):
        """Answer one call: forward a follower's write, else run `local()` here."""
        client_epoch = _int_header(context, EPOCH_HEADER)
        follower = self.follower
        if follower is not None:
            if mutating:
                return follower.forward(rpc, request, context)
            self._wait_min_seq(follower, context, client_epoch)
            applied = follower.applied
            reply = local()
            # The read saw a state between these two positions (applying goes on).
            context.set_trailing_metadata([(APPLIED_SEQ_KEY, str(applied)),
                                           (APPLIED_SEQ_END_KEY, str(follower.applied_at_most)),
                                           (EPOCH_HEADER, str(follower.epoch))])
            return reply
        if client_epoch > self.state.epoch:
            self.fence(client_epoch, "a client")
        take_commit_seq()
        reply = local()
        trailers = [(EPOCH_HEADER, str(self.state.epoch))]
        seq = take_commit_seq()
        if seq:
            trailers.append((COMMIT_SEQ_KEY, str(seq)))
        context.set_trailing_metadata(trailers)
        return reply

    @staticmethod
    def _wait_min_seq(follower: Follower, context: grpc.ServicerContext,
                      client_epoch: int) -> None:
        if follower.position is None:
            raise FsError(errno.EAGAIN, "follower is bootstrapping: no consistent state yet")
        wanted = _int_header(context, MIN_SEQ_KEY)
        if not wanted or (client_epoch and client_epoch < follower.epoch):
            return      # nothing asked, or a token of an older history: this state is newer
        if client_epoch > follower.epoch:
            raise FsError(errno.ETIMEDOUT, f"sequence {wanted} of epoch {client_epoch} "
                          f"cannot be served here: this follower follows epoch "
                          f"{follower.epoch} (its primary was superseded)")
        remaining = context.time_remaining()
        timeout = MAX_MIN_SEQ_WAIT_S if remaining is None else max(0.0, remaining - 0.05)
        if not follower.wait_applied(wanted, min(timeout, MAX_MIN_SEQ_WAIT_S)):
            raise FsError(errno.ETIMEDOUT, f"sequence {wanted} not applied here in time "
                          f"(applied {follower.applied}, primary at {follower.primary_seq})")

    def fence(self, newer_epoch: int, by: str) -> replication.EpochState:
        """Learn that `newer_epoch` exists: superseded if newer than ours (persisted)."""
        with self._lock:
            before = self.state
            self.state = replication.fence(self.engine, newer_epoch)
            if self.state.fenced and not before.fenced:
                log.error("primary: %s knows epoch %d, newer than this primary's %d: fenced, "
                          "refusing writes; final sequence %d", by, self.state.superseded_by,
                          self.state.epoch, self.engine.last_seq())
            return self.state

    def promote(self, force: bool, timeout: float) -> rpb.PromoteReply:
        """Planned switchover when the old primary answers (fence it, wait for its last
        record, promote: nothing lost); forced failover only with `force`."""
        with self._lock:
            follower = self.follower
            if follower is None:
                raise FsError(errno.EINVAL, "this server is a primary already")
            at = follower.position
            if at is None:
                raise FsError(errno.EAGAIN, "this follower has no consistent state to promote")
            new_epoch = replication.local_state(self.engine).highest_epoch + 1
            fenced, old_last = self._fence_old_primary(follower, new_epoch, force)
            if fenced and not follower.wait_applied(old_last, timeout) and not force:
                raise FsError(errno.EAGAIN, f"the old primary is fenced at sequence {old_last} "
                              f"but this follower has applied {follower.applied} after "
                              f"{timeout:g} s: run promote again to keep waiting, or --force "
                              f"to promote losing {old_last - follower.applied} records")
            follower.stop()
            epoch, at = replication.promote(self.engine)
            self.state = replication.epoch_state(self.engine)
            self.follower = None
            self._on_promote()
            if not fenced:
                threading.Thread(target=self._keep_fencing, args=(follower.primary, epoch,
                                                                 follower.credentials),
                                 name="metaserver-fence-old-primary", daemon=True).start()
            lost = old_last - at.seq if fenced else -1
            log.warning("promoted to primary with epoch %d at position %d of epoch %d; old "
                        "primary %s; %s", epoch, at.seq, at.epoch,
                        f"fenced at {old_last}" if fenced else "unreachable (forced)",
                        f"{lost} records lost" if fenced else "records after that position "
                        "are the loss window, kept in its rollback file when it rejoins")
            return rpb.PromoteReply(epoch=epoch, seq=self.engine.last_seq(),
                                    promoted_at_epoch=at.epoch, promoted_at_seq=at.seq,
                                    old_primary_fenced=fenced, old_primary_seq=old_last,
                                    records_lost=lost)

    @staticmethod
    def _fence_old_primary(follower: Follower, new_epoch: int,
                           force: bool) -> tuple[bool, int]:
        """(reached and fenced, its final sequence). Unreachable: an error unless forced."""
        try:
            reply = follower._repl.Fence(rpb.FenceRequest(epoch=new_epoch, by="promote"),
                                         timeout=FENCE_TIMEOUT_S)
        except grpc.RpcError as exc:
            if force:
                return False, 0
            raise FsError(errno.EHOSTUNREACH, f"the old primary {follower.primary} cannot be "
                          f"fenced ({exc.code().name}): promoting now may lose the writes it "
                          f"acknowledged after sequence {follower.applied}; use --force to "
                          "promote anyway") from None
        if reply.superseded_by > new_epoch or (reply.superseded_by == new_epoch
                                                and reply.epoch != follower.epoch):
            raise FsError(errno.EEXIST, f"the old primary was already superseded by epoch "
                          f"{reply.superseded_by}: another node was promoted; follow it")
        return True, reply.last_seq

    def _keep_fencing(self, address: str, epoch: int, credentials: Credentials) -> None:
        """After a forced failover: tell the old primary until it hears (it then refuses
        writes; clients and followers that reach it tell it too)."""
        with open_channel(address, credentials) as channel:
            stub = replication_pb2_grpc.ReplicationStub(channel)
            while not self._stop.wait(FENCE_RETRY_S):
                try:
                    stub.Fence(rpb.FenceRequest(epoch=epoch, by="the promoted follower"),
                               timeout=FENCE_TIMEOUT_S)
                    log.warning("the old primary %s now knows epoch %d: fenced", address,
                                epoch)
                    return
                except grpc.RpcError:
                    continue

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> rpb.StatusReply:
        if self.follower is not None:
            return self.follower.status()
        local = replication.local_state(self.engine)
        self.state = local.epoch       # another server on a shared database may have fenced
        return rpb.StatusReply(role="fenced" if local.epoch.fenced else "primary",
                               epoch=local.epoch.epoch, last_seq=local.last_seq, ready=True,
                               superseded_by=local.epoch.superseded_by,
                               lineage=local.lineage, namespace_id=local.namespace_id or 0)


class ReplicationServicer(replication_pb2_grpc.ReplicationServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def _check_primary(self, context: grpc.ServicerContext) -> None:
        if self.node.follower is not None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "this server is a follower; follow its primary instead")

    def Stream(self, request: rpb.StreamRequest, context: grpc.ServicerContext):
        self._check_primary(context)
        node = self.node
        if request.epoch > node.state.epoch:
            node.fence(request.epoch, "a follower")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"this primary's epoch "
                          f"{node.state.epoch} is stale: epoch {request.epoch} exists")
        if request.epoch != node.state.epoch and request.from_seq > 1:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"position of epoch {request.epoch} "
                          f"is not in this primary's log (epoch {node.state.epoch})")
        engine, epoch = node.engine, node.state.epoch
        next_seq, beat = max(request.from_seq, 1), 0.0
        newest = engine.last_seq()
        while context.is_active():
            try:
                records = replication.read_changes(engine, next_seq, STREAM_RECORDS,
                                                   STREAM_BYTES) if newest >= next_seq else []
            except PositionGone as exc:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            now = time.monotonic()
            if records or now - beat >= HEARTBEAT_S:
                next_seq += len(records)
                yield rpb.ChangeBatch(epoch=epoch, primary_seq=max(newest, next_seq - 1),
                                      records=records, primary_time_ns=time.time_ns(),
                                      superseded_by=node.state.superseded_by)
                beat = now
            # Woken by the next commit (at once on this process's own), or to beat.
            newest = engine.wait_for_commit(next_seq - 1,
                                            max(0.0, beat + HEARTBEAT_S - time.monotonic()))

    def Snapshot(self, request: rpb.SnapshotRequest, context: grpc.ServicerContext):
        self._check_primary(context)
        node = self.node
        if node.state.fenced:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"this primary's epoch "
                          f"{node.state.epoch} was superseded by {node.state.superseded_by}: "
                          "bootstrap from the new primary")
        lineage = replication.local_state(node.engine).lineage
        seq, pairs = replication.snapshot(node.engine)
        chunk = rpb.SnapshotChunk(seq=seq, epoch=node.state.epoch, lineage=lineage)
        size = 0
        for key, value in pairs:
            chunk.keys.append(key)
            chunk.values.append(value)
            size += len(key) + len(value)
            if size >= STREAM_BYTES:
                yield chunk
                chunk, size = rpb.SnapshotChunk(seq=seq, epoch=node.state.epoch,
                                                lineage=lineage), 0
        yield chunk

    def Status(self, request: rpb.StatusRequest, context: grpc.ServicerContext):
        return self.node.status()

    def Fence(self, request: rpb.FenceRequest, context: grpc.ServicerContext):
        self._check_primary(context)
        state = self.node.fence(request.epoch, request.by or context.peer())
        return rpb.FenceReply(epoch=state.epoch, superseded_by=state.superseded_by,
                              last_seq=self.node.engine.last_seq())

    def Promote(self, request: rpb.PromoteRequest, context: grpc.ServicerContext):
        try:
            return self.node.promote(request.force, request.timeout_s or PROMOTE_WAIT_S)
        except (FsError, OutOfOrder) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
