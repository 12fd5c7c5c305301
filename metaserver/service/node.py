"""This server's role (primary, fenced primary or follower), and what each Metadata
call does because of it.

A follower's reads run locally and carry `metaserver-applied-seq` (and the end of the
applied range they read from); a request header `metaserver-min-seq: S` (with
`metaserver-epoch`) waits until S is applied, else ETIMEDOUT; its writes are forwarded.

Epochs: every reply carries `metaserver-epoch`. A primary that hears of a newer epoch (a
client's `metaserver-epoch` header, a Fence call, a follower's Stream) is fenced: the
fence commits in its engine, every mutation reads the epoch key, so it refuses writes from
that commit on, and its log's end is final. Promote: planned switchover fences the old
primary, waits until its last record is applied here, then takes epoch + 1 (no loss);
forced failover (old primary unreachable, --force) promotes at the position it has and
keeps telling the old primary until it hears.
"""

from __future__ import annotations

import errno
import logging
import threading

import grpc

from engines.contract import Engine
from metaserver import replication
from metaserver.channel import Credentials, open_channel
from metaserver.errors import FsError
from metaserver.service.follower import (APPLIED_SEQ_END_KEY, APPLIED_SEQ_KEY, COMMIT_SEQ_KEY,
                                         EPOCH_HEADER, FENCE_TIMEOUT_S, MIN_SEQ_KEY, Follower)
from metaserver.v1 import replication_pb2 as rpb, replication_pb2_grpc

log = logging.getLogger(__name__)

MAX_MIN_SEQ_WAIT_S = 30.0
FENCE_RETRY_S = 2.0


def _int_header(context: grpc.ServicerContext, key: str) -> int:
    value = dict(context.invocation_metadata()).get(key)
    if value is None:
        return 0
    if not value.isdigit():
        raise FsError(errno.EINVAL, f"{key} must be a number")
    return int(value)


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
