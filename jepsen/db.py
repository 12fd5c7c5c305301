"""The DB seam: one faultable process of a deployment (a metaserver, a database node),
started, stopped, crashed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT) by its own PID.

Deployments hand these to nemeses by name (`Deployment.processes()`); `kind` says
whether it is a "metaserver" or an "engine" (a database node under metaservers).
"""

from __future__ import annotations

import signal
import subprocess
from typing import Protocol

from metaserver.testing.metaserver_process import ServerProcess

STOP_TIMEOUT_S = 30


class Process:
    """One child process. Subclasses say how to start it and which Popen it is."""

    kind = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self.paused = False

    @property
    def popen(self) -> subprocess.Popen | None:
        raise NotImplementedError

    def start(self) -> None:
        """Start it and wait until it serves."""
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        """Running (a paused process is alive)."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it does not end); its data stays."""
        self.resume()        # a stopped process would only act on SIGTERM once continued
        if self.alive:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash) and reap it; its data stays, so start() brings it back."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(STOP_TIMEOUT_S)
        self.paused = False

    def pause(self) -> None:
        if self.alive:
            self.popen.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive and self.paused:
            self.popen.send_signal(signal.SIGCONT)
        self.paused = False

    def __repr__(self) -> str:
        state = "paused" if self.paused else "alive" if self.alive else "down"
        return f"<{type(self).__name__} {self.name} pid={self.pid} {state}>"


class MetaserverProcess(Process):
    """`metaserver serve` (a ServerProcess); its flags and environment may be changed
    between stop() and start() through `server`."""

    kind = "metaserver"

    def __init__(self, name: str, server: ServerProcess) -> None:
        super().__init__(name)
        self.server = server

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def popen(self) -> subprocess.Popen | None:
        return self.server.proc

    def start(self) -> None:
        self.server.start()
        self.paused = False


class DatabaseNode(Protocol):
    """What an engine node offers: metaserver.testing's MariaDB, or a Galera node."""

    proc: subprocess.Popen | None

    def start(self) -> None: ...


class EngineProcess(Process):
    """A database server process (MariaDB, a Galera node). stop() keeps its data
    directory: removing it is the deployment's teardown."""

    kind = "engine"

    def __init__(self, name: str, node: DatabaseNode) -> None:
        super().__init__(name)
        self.node = node

    @property
    def popen(self) -> subprocess.Popen | None:
        return self.node.proc

    def start(self) -> None:
        self.node.start()
        self.paused = False
