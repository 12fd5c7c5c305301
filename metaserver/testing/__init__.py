"""Local servers for the tests, the benchmarks and the deploy example, on loopback.

Not part of the product (an import-linter contract keeps the server, client and CLI
from importing it): `databases`, `mariadb` and `postgres` start private database
servers in temp dirs; `metaserver_process` runs `metaserver serve` as a child process.
Everything here is started on a free loopback port and stopped by its own PID.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
