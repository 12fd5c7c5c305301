"""Session consistency: the newest (epoch, sequence) a client has seen, learnt from
reply trailers and sent back as request headers.

A primary's mutation replies carry `metaserver-commit-seq`, a follower's read replies
`metaserver-applied-seq`, and every reply `metaserver-epoch`: the epoch whose change log
those sequences count (a failover starts a new numbering under epoch + 1). A client
sends the highest epoch it has seen as `metaserver-epoch` (a superseded primary learns
from it that it must refuse writes) and, for session consistency, its sequence as
`metaserver-min-seq`: a follower answers only once it has applied that far, so the
client reads its own writes and never goes back in time, whichever server it asks.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

EPOCH_KEY = "metaserver-epoch"
COMMIT_SEQ_KEY = "metaserver-commit-seq"
APPLIED_SEQ_KEY = "metaserver-applied-seq"
APPLIED_SEQ_END_KEY = "metaserver-applied-seq-end"   # a follower read: applied when it ended
MIN_SEQ_KEY = "metaserver-min-seq"

_TOKEN = re.compile(r"(?:(\d+):)?(\d+)")


@dataclass(frozen=True, order=True)
class SessionToken:
    """Sequence `seq` of epoch `epoch`'s change log. Tokens order by epoch first: any
    position of a newer epoch is after every position of an older one. Epoch 0 is
    "not known yet": the epoch of whichever server answers first."""
    epoch: int = 0
    seq: int = 0

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> SessionToken:
        """`EPOCH:SEQ` (as str() writes it) or `SEQ` alone; ValueError otherwise."""
        match = _TOKEN.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a session token: expected [EPOCH:]SEQ")
        return cls(int(match[1] or 0), int(match[2]))


class SessionTimeout(TimeoutError):
    """A follower did not reach the session's sequence within the call's deadline
    (errno ETIMEDOUT). `awaited` is the token it was asked for."""

    def __init__(self, message: str, filename: str | None, awaited: SessionToken,
                 batch_index: int | None = None) -> None:
        super().__init__(errno.ETIMEDOUT, f"{message} (the session awaited sequence "
                         f"{awaited.seq} of epoch {awaited.epoch})", filename)
        self.awaited = awaited
        self.batch_index = batch_index


class SessionTracker:
    """What one client has seen, shared by its threads.

    `consistent` says whether calls ask for the session's sequence (min-seq); the
    highest epoch is sent either way."""

    def __init__(self, consistent: bool) -> None:
        self.consistent = consistent
        self._token = SessionToken()
        self.last_commit: SessionToken | None = None
        self._lock = threading.Lock()

    @property
    def token(self) -> SessionToken:
        return self._token

    def advance(self, token: SessionToken) -> None:
        """Make the session at least `token` (tokens only move forward)."""
        with self._lock:
            if token > self._token:
                self._token = token

    def headers(self) -> tuple[SessionToken | None, list[tuple[str, str]]]:
        """(the token a follower must reach, or None; the request headers)."""
        token = self._token
        headers = [(EPOCH_KEY, str(token.epoch))] if token.epoch else []
        if not (self.consistent and token.seq):
            return None, headers
        return token, headers + [(MIN_SEQ_KEY, str(token.seq))]

    def observe(self, trailers: Iterable[tuple[str, str | bytes]] | None) -> None:
        """Learn from one reply's trailers (of a success or a failure)."""
        values = dict(trailers or ())
        epoch = _number(values.get(EPOCH_KEY))
        commit = _number(values.get(COMMIT_SEQ_KEY))
        seq = max(commit or 0, _number(values.get(APPLIED_SEQ_KEY)) or 0)
        if epoch is None and not seq:
            return
        # A server that names no epoch is taken to be of the newest one seen.
        epoch = self._token.epoch if epoch is None else epoch
        if commit:
            self.last_commit = SessionToken(epoch, commit)
        self.advance(SessionToken(epoch, seq))


def _number(value: str | bytes | None) -> int | None:
    """A trailer's decimal value; None if absent or garbled (a trailer is a hint)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return int(value) if value is not None and value.isdigit() else None
