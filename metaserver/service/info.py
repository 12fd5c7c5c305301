"""The ServerInfo service: what this server is and how it is set up (version, engine
kind, uptime, security and limits), its client sessions, and a file's link parents,
for `metactl status` and `metactl stat`; and the build and usage gauges of /metrics.
Never the engine URL: it may carry a password."""

from __future__ import annotations

import errno
import threading
import time
from urllib.parse import urlsplit

import grpc
from prometheus_client import Gauge, Info

from engines.contract import EngineError
from engines.transactional import run
from metaserver import __version__, schema
from metaserver.errors import FsError
from metaserver.runner import Runner
from metaserver.service.config import ServerConfig
from metaserver.service.errors import abort_with
from metaserver.v1 import server_pb2 as spb

SERVICE = spb.DESCRIPTOR.services_by_name["ServerInfo"]
BUILD = Info("metaserver_build", "The metaserver version serving")
BUILD.info({"version": __version__})
USED = {"inodes": Gauge("metaserver_inodes_used", "Inodes in use, as statfs reports them"),
        "bytes": Gauge("metaserver_bytes_used", "Bytes of file data, as statfs reports them")}
SESSIONS_LISTED = 1000          # at most, when the request names no limit
USAGE_FRESH_S = 1.0             # one engine read serves the scrapes within this
USAGE_READ_S = 1.0              # a scrape waits at most this for a struggling engine


class _Usage:
    """The usage gauges' source: the latest server's statfs, read at most once per
    USAGE_FRESH_S through the runner (so it shows in metaserver_ops_total as a statfs).
    A scrape must never fail or hang: an engine that cannot answer within USAGE_READ_S
    (its retries stop there) reads NaN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._read_at = 0.0
        self._values = {"inodes": float("nan"), "bytes": float("nan")}
        for resource, gauge in USED.items():
            gauge.set_function(lambda r=resource: self.value(r))

    def serve(self, runner: Runner) -> None:
        with self._lock:
            self._runner, self._read_at = runner, 0.0

    def value(self, resource: str) -> float:
        with self._lock:
            if self._runner is not None and time.monotonic() - self._read_at >= USAGE_FRESH_S:
                try:
                    usage = self._runner.call("statfs",
                                              deadline=time.monotonic() + USAGE_READ_S)
                    self._values = {"inodes": usage.used_inodes, "bytes": usage.used_bytes}
                except Exception:    # noqa: BLE001 - e.g. a stopped server's closed engine
                    self._values = {"inodes": float("nan"), "bytes": float("nan")}
                self._read_at = time.monotonic()
            return float(self._values[resource])


USAGE = _Usage()


class InfoServicer:
    def __init__(self, config: ServerConfig, listen: str, runner: Runner) -> None:
        self._config = config
        self._listen = listen           # as bound: port 0 in the config is a real port here
        self._runner = runner
        self._started_unix = time.time()
        self._started = time.monotonic()
        USAGE.serve(runner)

    def Info(self, request: spb.InfoRequest, context: grpc.ServicerContext) -> spb.InfoReply:
        c = self._config
        return spb.InfoReply(
            version=__version__, engine=urlsplit(c.meta_url).scheme,
            uptime_seconds=time.monotonic() - self._started,
            started_at_unix=self._started_unix, listen=self._listen, tls=bool(c.tls_cert),
            mutual_tls=bool(c.tls_client_ca), tokens=bool(c.token_store),
            client_ops_per_s=c.client_ops_per_s, client_max_concurrent=c.client_max_concurrent,
            max_concurrent_calls=c.max_concurrent_calls, workers=c.workers)

    def Sessions(self, request: spb.SessionsRequest,
                 context: grpc.ServicerContext) -> spb.SessionsReply:
        limit = request.limit or SESSIONS_LISTED

        def read(txn) -> spb.SessionsReply:
            reply, current = spb.SessionsReply(), None
            for key, value in txn.scan(*schema.session_range()):
                session, ino = schema.parse_session_key(key)
                if ino is None:         # the lease key comes first, then its inode marks
                    reply.count += 1
                    current = reply.sessions.add(id=session, expires_unix_ns=schema.decode_i64(
                        value)) if len(reply.sessions) < limit else None
                elif current is not None and current.id == session:
                    current.inodes += 1
            return reply
        return self._read(context, read)

    def LinkParents(self, request: spb.LinkParentsRequest,
                    context: grpc.ServicerContext) -> spb.LinkParentsReply:
        def read(txn) -> spb.LinkParentsReply:
            if txn.get(schema.attr_key(request.ino)) is None:
                raise FsError(errno.ENOENT, f"no inode {request.ino}")
            return spb.LinkParentsReply(parents=[
                spb.LinkParent(parent=schema.parent_of_key(key), links=schema.decode_count(value))
                for key, value in txn.scan(*schema.parent_range(request.ino))])
        return self._read(context, read)

    def _read(self, context: grpc.ServicerContext, read):
        """read(txn) in one snapshot; failures carry an errno, as the Metadata service's."""
        try:
            return run(self._runner.engine, read, read_only=True).value
        except FsError as exc:
            abort_with(context, exc)
        except EngineError as exc:
            abort_with(context, FsError(errno.EIO, f"engine: {exc}"))
