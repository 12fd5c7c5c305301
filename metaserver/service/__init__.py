"""The gRPC service layer: the Metadata API over a Runner, and the server around it.

Use `start(ServerConfig(...))` for an in-process server (tests, embedding) and
`serve(config)` for the blocking, signal-handling server behind `metaserver serve`.
"""

from metaserver.service.config import ConfigError, ServerConfig, load_config
from metaserver.service.errors import BATCH_INDEX_KEY, ERRNO_KEY
from metaserver.service.server import RunningServer, StartError, serve, start

__all__ = ["BATCH_INDEX_KEY", "ERRNO_KEY", "ConfigError", "RunningServer", "ServerConfig",
           "StartError", "load_config", "serve", "start"]
