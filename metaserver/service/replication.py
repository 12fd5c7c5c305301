"""The primary's Replication service: Stream serves change records from any retained
position (woken by commits, heartbeats when idle; every batch carries the primary's
newest sequence and clock), Snapshot a consistent namespace scan with the lineage;
Status, Fence and Promote act on this server's Node (metaserver.service.node).
"""

from __future__ import annotations

import time

import grpc

from metaserver import replication
from metaserver.errors import FsError
from metaserver.replication import OutOfOrder, PositionGone
from metaserver.service.node import Node
from metaserver.v1 import replication_pb2 as rpb, replication_pb2_grpc

STREAM_RECORDS = 2000             # records per ChangeBatch at most
STREAM_BYTES = 4 << 20
HEARTBEAT_S = 0.5
PROMOTE_WAIT_S = 30.0


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
