"""Background housekeeping: fold usage and directory-stats deltas, expire idempotency
records, trim the change log, end dead client sessions, on a timer in one daemon thread. A failing task
is logged and retried at the next round; it never stops the thread or the server. A
task the engine failed transiently (a lost race: on Galera the trim's commit can lose
to another node's) is only deferred to the next round, not an error."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from engines.contract import RETRYABLE
from metaserver import schema
from metaserver.runner import Runner

log = logging.getLogger(__name__)

FOLD_PAGE = 1000        # deltas folded per transaction (its turn holds up the others)
EXPIRE_FRACTION = 0.25  # request records are expired this often, as a fraction of the TTL
EXPIRE_MAX_S = 600
SESSION_PAGE = 100      # dead client sessions ended per transaction


class Maintenance:
    def __init__(self, runner: Runner, *, interval_s: float, request_ttl_s: float,
                 changelog_keep: int) -> None:
        self.runner = runner
        self.interval_s = interval_s
        self.request_ttl_ns = int(request_ttl_s * 1e9)
        self.changelog_keep = changelog_keep
        self._stop = threading.Event()
        self._next_expiry = 0.0
        self._thread = threading.Thread(target=self._loop, name="metaserver-maintenance",
                                        daemon=True)
        self._tasks: list[tuple[str, Callable[[], object]]] = [
            ("fold usage deltas", self.fold_usage),
            ("fold directory-stats deltas", self.fold_tree_deltas),
            ("expire request records", self.expire_requests),
            ("trim change log", self.trim_changes),
            ("expire client sessions", self.expire_sessions),
        ]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def run_once(self) -> None:
        for what, task in self._tasks:
            if self._stop.is_set():
                return
            try:
                task()
            except RETRYABLE as exc:
                log.info("maintenance: %s deferred to the next round: %s", what, exc)
            except Exception:
                log.exception("maintenance: %s failed", what)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def fold_usage(self) -> int:
        """Fold this server's usage deltas into the counters, a page per transaction."""
        return self.runner.fold_usage(page=FOLD_PAGE)

    def fold_tree_deltas(self) -> int:
        """Fold every server's directory-stats deltas into the directories' stats,
        a page per transaction. Candidates come from a snapshot (a range read inside the
        transaction would conflict with every create adding a delta inside the range)."""
        folded, cursor = 0, schema.TREE_DELTA_PREFIX
        while True:
            with self.runner.engine.snapshot() as txn:
                keys = [k for k, _ in txn.scan(cursor, schema.TREE_DELTA_END, limit=FOLD_PAGE)]
            if keys:
                folded += self.runner.call_internal("fold_tree_deltas", keys=keys)
            if len(keys) < FOLD_PAGE:
                return folded
            cursor = keys[-1] + b"\0"

    def expire_requests(self) -> int:
        """Delete request records older than the TTL. It walks every record, so it runs
        only every EXPIRE_FRACTION of the TTL (at most every EXPIRE_MAX_S), not each round."""
        now = time.monotonic()
        if now < self._next_expiry:
            return 0
        self._next_expiry = now + min(self.request_ttl_ns / 1e9 * EXPIRE_FRACTION, EXPIRE_MAX_S)
        return self.runner.expire_requests(time.time_ns() - self.request_ttl_ns)

    def expire_sessions(self) -> int:
        """End client sessions whose lease ran out (their locks, their open-unlinked
        inodes), a page per transaction."""
        ended = 0
        while (count := self.runner.call_internal("expire_sessions", limit=SESSION_PAGE)):
            ended += count
            if count < SESSION_PAGE:
                break
        return ended

    def trim_changes(self) -> int:
        return self.runner.engine.trim_changes(self.changelog_keep)
