"""Fair shares of one server: per-client rate (token bucket) and concurrency limits,
and a server-wide cap on concurrent calls.

A client is its token (or, on an open server, its connection). A call over any limit
is refused at once, before it runs, so a greedy client costs the others one cheap
refusal per excess call and its own calls never queue ahead of theirs; the client
library backs off on the refusal (EAGAIN).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Idle clients are forgotten once this many are tracked (open servers see one per connection).
_FORGET_AT = 10_000


class Overloaded(Exception):
    """Over a limit: the call was not run; the message says which limit."""


@dataclass
class _Client:
    tokens: float
    refilled: float          # time.monotonic() of the last refill
    in_flight: int = 0


class Limits:
    """`ops_per_s` per client (bursts of up to one second's worth), at most
    `client_concurrent` calls per client and `server_concurrent` in all; 0 is no limit."""

    def __init__(self, ops_per_s: float = 0, client_concurrent: int = 0,
                 server_concurrent: int = 0) -> None:
        self.ops_per_s = ops_per_s
        self.burst = max(1.0, ops_per_s)
        self.client_concurrent = client_concurrent
        self.server_concurrent = server_concurrent
        self._clients: dict[str, _Client] = {}
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self.ops_per_s or self.client_concurrent or self.server_concurrent)

    @contextmanager
    def admit(self, client: str) -> Iterator[None]:
        """Hold one call's place for `client` while the block runs; Overloaded if
        there is none."""
        with self._lock:
            state = self._take(client)
        try:
            yield
        finally:
            with self._lock:
                state.in_flight -= 1
                self._in_flight -= 1

    def _take(self, client: str) -> _Client:
        now = time.monotonic()
        state = self._clients.get(client)
        if state is None:
            if len(self._clients) >= _FORGET_AT:
                self._forget_idle(now)
            state = self._clients[client] = _Client(self.burst, now)
        if self.server_concurrent and self._in_flight >= self.server_concurrent:
            raise Overloaded(f"server busy: {self.server_concurrent} concurrent calls "
                             "(server limit); retry later")
        if self.client_concurrent and state.in_flight >= self.client_concurrent:
            raise Overloaded(f"{self.client_concurrent} concurrent calls (this client's "
                             "limit); retry later")
        if self.ops_per_s:
            state.tokens = min(self.burst, state.tokens + (now - state.refilled) * self.ops_per_s)
            state.refilled = now
            if state.tokens < 1:
                raise Overloaded(f"over {self.ops_per_s:g} calls/s (this client's limit); "
                                 "retry later")
            state.tokens -= 1
        state.in_flight += 1
        self._in_flight += 1
        return state

    def _forget_idle(self, now: float) -> None:
        for name, state in list(self._clients.items()):
            full = state.tokens + (now - state.refilled) * self.ops_per_s >= self.burst
            if state.in_flight == 0 and (full or not self.ops_per_s):
                del self._clients[name]
