"""The ServerInfo service: what this server is and how it is set up (version, engine
kind, uptime, security and limits), for `metactl status`. Never the engine URL: it
may carry a password."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import grpc
from prometheus_client import Info

from metaserver import __version__
from metaserver.service.config import ServerConfig
from metaserver.v1 import server_pb2 as spb

SERVICE = spb.DESCRIPTOR.services_by_name["ServerInfo"]
BUILD = Info("metaserver_build", "The metaserver version serving")
BUILD.info({"version": __version__})


class InfoServicer:
    def __init__(self, config: ServerConfig, listen: str) -> None:
        self._config = config
        self._listen = listen           # as bound: port 0 in the config is a real port here
        self._started_unix = time.time()
        self._started = time.monotonic()

    def Info(self, request: spb.InfoRequest, context: grpc.ServicerContext) -> spb.InfoReply:
        c = self._config
        return spb.InfoReply(
            version=__version__, engine=urlsplit(c.meta_url).scheme,
            uptime_seconds=time.monotonic() - self._started,
            started_at_unix=self._started_unix, listen=self._listen, tls=bool(c.tls_cert),
            mutual_tls=bool(c.tls_client_ca), tokens=bool(c.token_store),
            client_ops_per_s=c.client_ops_per_s, client_max_concurrent=c.client_max_concurrent,
            max_concurrent_calls=c.max_concurrent_calls, workers=c.workers)
