"""A mount's client session in the server: a lease renewed in the background, under
which the mount holds open-unlinked inodes and its locks (server ops/sessions.py and
ops/locks.py). If the mount dies, the lease runs out and the server drops both."""

from __future__ import annotations

import logging
import os
import threading

from metaserver.client import Client

log = logging.getLogger("metafs")


class ClientSession:
    def __init__(self, client: Client, ttl_s: float) -> None:
        self.client = client
        self.id = os.urandom(16)
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="metafs-session",
                                        daemon=True)

    def start(self) -> ClientSession:
        self.client.renew_session(self.id, self.ttl_ms)
        self._thread.start()
        return self

    @property
    def closing(self) -> bool:
        return self._stop.is_set()

    def _renew_loop(self) -> None:
        # Three renewals per lease: one lost (a server restart) does not end it.
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.client.renew_session(self.id, self.ttl_ms)
            except OSError as exc:
                log.warning("session renewal failed (locks and open-unlinked files are "
                            "lost if the lease runs out): %s", exc)

    def close(self) -> None:
        """Stop renewing and end the session in the server (its locks, its holds)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self.client.close_session(self.id)
        except OSError as exc:
            log.warning("closing the session failed (the server ends it when its lease "
                        "runs out): %s", exc)
