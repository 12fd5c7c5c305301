"""Run the gRPC server: wire engine, runner, servicer, health, reflection and
maintenance together (`start`), and serve until a signal says stop (`serve`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import prometheus_client
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engines import open_engine
from engines.contract import Engine, EngineError
from metaserver import __version__
from metaserver.channel import Credentials, CredentialsError, read_credential_file
from metaserver.errors import FsError
from metaserver.runner import Runner, open_namespace
from metaserver.service.accesslog import AccessLog
from metaserver.service.auth import Gatekeeper, TokenFileError, TokenStore
from metaserver.service.codec import SERVICE, Codec
from metaserver.service.config import ServerConfig
from metaserver.service.info import SERVICE as INFO_SERVICE
from metaserver.service.info import InfoServicer
from metaserver.service.limits import Limits
from metaserver.service.maintenance import Maintenance
from metaserver.service.follower import FollowRefused, Follower
from metaserver.service.node import Node
from metaserver.service.replication import ReplicationServicer
from metaserver.service.rpcmetrics import RpcMetrics
from metaserver.service.servicer import MetadataServicer, add_service
from metaserver.v1 import replication_pb2

log = logging.getLogger("metaserver")

EXIT_START_FAILED = 2
# Health is reported for the server as a whole ("") and for the API service.
HEALTH_SERVICES = ("", SERVICE.full_name)


class StartError(Exception):
    """The server could not start; the message is one line for the operator."""


@dataclass
class RunningServer:
    server: grpc.Server
    executor: ThreadPoolExecutor
    health: health.HealthServicer
    maintenance: Maintenance
    runner: Runner
    node: Node
    host: str
    port: int
    probe_server: grpc.Server | None = None     # health alone, for plaintext probes
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def engine(self) -> Engine:
        return self.runner.engine

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float = 5) -> None:
        """Drain and stop: report NOT_SERVING, let calls finish for up to `grace`
        seconds, wait for handler threads, then stop maintenance and close the engine."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.health.enter_graceful_shutdown()
            self.server.stop(grace).wait()
            if self.probe_server is not None:
                self.probe_server.stop(None).wait()
            # Handlers cut off by the grace period still run: never close the engine under them.
            self.executor.shutdown(wait=True)
            self.node.stop()
            if self.node.follower is not None:
                self.node.follower.stop()
            self.maintenance.stop()
            self.engine.close()
            self._stopped.set()

    def wait(self) -> None:
        """Block until stop() has finished."""
        self._stopped.wait()


def describe_engine(url: str) -> str:
    """`engine=KIND data=WHERE` for the log, without credentials the URL may carry."""
    parts = urlsplit(url)
    if parts.scheme.startswith("rocksdb"):
        where = os.path.abspath(parts.netloc + parts.path)
    else:
        host = parts.hostname or ""
        where = (f"{host}:{parts.port}" if parts.port else host) + parts.path
    return f"engine={parts.scheme} data={where}" if where else f"engine={parts.scheme}"


BOOTSTRAP_TIMEOUT_S = 600


def _rollback_dir(config: ServerConfig) -> str:
    """Beside the data: DATA-rollback for RocksDB, ./metaserver-rollback otherwise."""
    parts = urlsplit(config.meta_url)
    if parts.scheme.startswith("rocksdb"):
        return os.path.abspath(parts.netloc + parts.path).rstrip("/") + "-rollback"
    return os.path.abspath("metaserver-rollback")


def _open_runner(config: ServerConfig) -> tuple[Runner, Follower | None]:
    try:
        # A follower's bootstrap fills a new local store; a primary needs a formatted one.
        engine = open_engine(config.meta_url, create=True) if config.follow \
            else open_namespace(config.meta_url)
    except (EngineError, OSError) as exc:
        raise StartError(f"cannot open metadata engine {describe_engine(config.meta_url)}: "
                         f"{exc}") from exc
    follower = None
    try:
        if config.follow:
            # Before the Runner: it needs the namespace the snapshot brings.
            follower = Follower(engine, config.follow, changelog_keep=config.changelog_keep,
                                rejoin=config.rejoin,
                                rollback_dir=config.rollback_dir or _rollback_dir(config),
                                credentials=_follower_credentials(config))
            follower.prepare(timeout=BOOTSTRAP_TIMEOUT_S)
        return Runner(engine, dir_mtime_skip_ns=int(config.dir_mtime_skip_ms * 1e6)), follower
    except grpc.RpcError as exc:
        engine.close()
        raise StartError(f"cannot bootstrap from primary {config.follow}: {exc.code().name} "
                         f"{exc.details()}") from exc
    except (FollowRefused, CredentialsError) as exc:
        engine.close()
        raise StartError(str(exc)) from exc
    except (FsError, EngineError) as exc:
        engine.close()
        raise StartError(f"cannot use metadata engine {describe_engine(config.meta_url)}: "
                         f"{exc}") from exc


def _follower_credentials(config: ServerConfig) -> Credentials:
    return Credentials.resolve(token_file=config.follow_token_file or None,
                               ca_file=config.follow_tls_ca, cert_file=config.follow_tls_cert,
                               key_file=config.follow_tls_key)


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """grpcio's TLS credentials from the configured files; None: plaintext."""
    if not config.tls_cert:
        return None
    try:
        client_ca = read_credential_file(config.tls_client_ca, "TLS client CA") \
            if config.tls_client_ca else None
        key_pair = (read_credential_file(config.tls_key, "TLS key"),
                    read_credential_file(config.tls_cert, "TLS certificate"))
    except CredentialsError as exc:
        raise StartError(str(exc)) from exc
    return grpc.ssl_server_credentials([key_pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def _gatekeeper(config: ServerConfig) -> list[grpc.ServerInterceptor]:
    """The interceptor, when tokens or limits are configured (else none: nothing to check)."""
    try:
        tokens = TokenStore(config.token_store) if config.token_store else None
    except TokenFileError as exc:
        raise StartError(str(exc)) from exc
    limits = Limits(config.client_ops_per_s, config.client_max_concurrent,
                    config.max_concurrent_calls)
    return [Gatekeeper(tokens, limits)] if tokens is not None or limits.active else []


def _bind(server: grpc.Server, listen: str,
          credentials: grpc.ServerCredentials | None) -> int:
    try:
        port = server.add_insecure_port(listen) if credentials is None \
            else server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise StartError(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise StartError(f"cannot listen on {listen}")
    return port


def _probe_server(listen: str, health_servicer: health.HealthServicer) -> grpc.Server:
    """A plaintext server of the health service alone (it reveals nothing but
    SERVING/NOT_SERVING), for probes that cannot speak TLS; bound, not started."""
    server = grpc.server(ThreadPoolExecutor(2, thread_name_prefix="metaserver-probe"),
                         options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _bind(server, listen, None)
    return server


def _serve_metrics(listen: str) -> None:
    """Prometheus /metrics over HTTP (prometheus-client's own server thread)."""
    host, _, port = listen.rpartition(":")
    try:
        prometheus_client.start_http_server(int(port), addr=host.strip("[]"))
    except OSError as exc:
        raise StartError(f"cannot serve metrics on {listen}: {exc.strerror}") from exc


def start(config: ServerConfig) -> RunningServer:
    """Open the engine and start serving on config.listen; raises StartError."""
    # Credentials first: a bad file must not leave an opened engine behind.
    # Metrics, then the access log, outside the gatekeeper: they see its refusals too.
    access_log = [AccessLog(config.access_log_sample)] if config.access_log_sample else []
    credentials = _server_credentials(config)
    interceptors = [RpcMetrics(), *access_log, *_gatekeeper(config)]
    runner, follower = _open_runner(config)
    executor = ThreadPoolExecutor(config.workers, thread_name_prefix="metaserver-rpc")
    message_bytes = config.max_message_mb << 20
    # Without SO_REUSEPORT a second server on a busy port fails instead of sharing it.
    server = grpc.server(executor, interceptors=interceptors,
                         options=[("grpc.so_reuseport", 0),
                                  ("grpc.max_receive_message_length", message_bytes),
                                  ("grpc.max_send_message_length", message_bytes)])
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    probe_server = None
    try:
        port = _bind(server, config.listen, credentials)
        if config.health_listen:
            probe_server = _probe_server(config.health_listen, health_servicer)
        if config.metrics_listen:
            _serve_metrics(config.metrics_listen)
    except StartError:
        if probe_server is not None:
            probe_server.stop(None)
        executor.shutdown()
        if follower is not None:
            follower.stop()
        runner.engine.close()
        raise
    maintenance = Maintenance(runner, interval_s=config.maintenance_interval_s,
                              request_ttl_s=config.request_ttl_s,
                              changelog_keep=config.changelog_keep)
    # A follower's namespace changes only by applying the primary's records: its
    # maintenance (which writes namespace keys) starts only if it is promoted.
    node = Node(runner.engine, follower, on_promote=maintenance.start)
    servicer = MetadataServicer(runner, Codec(total_bytes=config.total_bytes,
                                              total_inodes=config.total_inodes), node)
    add_service(server, SERVICE, servicer)
    add_service(server, replication_pb2.DESCRIPTOR.services_by_name["Replication"],
                ReplicationServicer(node))
    add_service(server, INFO_SERVICE,
                InfoServicer(config, f"{config.listen.rpartition(':')[0]}:{port}", runner))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE.full_name, replication_pb2.DESCRIPTOR.services_by_name["Replication"].full_name,
         INFO_SERVICE.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    server.start()
    if probe_server is not None:
        probe_server.start()
    if follower is None:
        maintenance.start()
    else:
        follower.start()
    for name in HEALTH_SERVICES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = config.listen.rpartition(":")[0]
    return RunningServer(server, executor, health_servicer, maintenance, runner, node, host, port,
                         probe_server)


def serve(config: ServerConfig, grace: float = 5) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully; returns the exit code."""
    # Handlers first: a SIGTERM sent as soon as "serving" is logged must stop us
    # gracefully, not kill us with the default action.
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    try:
        running = start(config)
    except StartError as exc:
        log.error("metaserver: %s", exc)
        return EXIT_START_FAILED
    log.info("metaserver %s serving on %s %s", __version__, running.address,
             describe_engine(config.meta_url))
    # With a timeout: a signal the kernel delivers to another thread (gRPC's) is only
    # handled once the main thread runs Python code again; an untimed wait may never.
    while not stop_requested.wait(0.5):
        pass
    log.info("metaserver stopping")
    running.stop(grace)
    return 0
