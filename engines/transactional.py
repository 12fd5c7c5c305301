"""One transaction, retried: the begin / run / commit / retry loop every caller shares.

`run(engine, fn)` is FoundationDB's `@transactional`: it opens `with engine.begin() as
txn` (or a read-only snapshot), calls `fn(txn)`, commits, and when the attempt raised
TxnConflict, CommitUnknown or EngineUnavailable runs it again from the start after a
jittered exponential backoff, within the limits of one `Policy`. `fn` must therefore be
safe to run again: it re-reads what it changes, and after CommitUnknown it finds its own
earlier commit (by a request id, a position, or writes that are blind and idempotent).

OutOfCluster (a Galera node outside the primary component) is never retried here: it
refuses queries for seconds, which is the caller's caller's to wait out, maybe elsewhere.

The runner (metaserver/runner.py) adds idempotency records and metrics on top; the
dump loader, repair, replication and metabench's raw engine target use it as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import tenacity

from engines.contract import RETRYABLE, Engine, EngineUnavailable, OutOfCluster

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """When to give up. No attempt starts after `seconds` (`unavailable_seconds` when the
    last one found the engine unavailable: a longer outage is the caller's to retry, with
    its own policy) or after the caller's deadline; at most `attempts` in all. Waits are
    random in [0, backoff * 2^n], capped at `max_backoff`."""
    attempts: int = 50
    seconds: float = 10
    unavailable_seconds: float = 2
    backoff: float = 0.0002
    max_backoff: float = 0.5


RETRY = Policy()


class Committed(NamedTuple, Generic[T]):
    value: T            # what fn returned
    seq: int | None     # the commit's change sequence (None: it wrote nothing)


def run(engine: Engine, fn: Callable, *, policy: Policy = RETRY, read_only: bool = False,
        header: bytes = b"", wait_durable: bool = True, deadline: float | None = None,
        on_retry: Callable[[Exception], None] | None = None) -> Committed:
    """Run `fn(txn)` in a transaction and commit it (with change-record `header`), retried
    as `policy` says; returns fn's value and the commit sequence. `deadline`
    (time.monotonic() seconds): no attempt starts after it. `on_retry(error)` is called
    for each failed attempt that is tried again. The last error is raised as it is."""
    def attempt() -> Committed:
        with engine.turn(), engine.snapshot() if read_only else engine.begin() as txn:
            try:
                value = fn(txn)
            except Exception:
                # Live-read engines: the error may come from reads that straddle another
                # commit (an answer no serial order gives); then this raises TxnConflict
                # and the attempt is retried.
                txn.validate()
                raise
            return Committed(value, txn.commit(header, wait_durable=wait_durable))

    started = time.monotonic()
    try:    # the common case pays nothing for the retry machinery, nor waits to retry
        return attempt()
    except RETRYABLE as exc:
        if isinstance(exc, OutOfCluster):
            raise
        if on_retry is not None:
            on_retry(exc)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=_stop(policy, started, deadline),
        wait=tenacity.wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff),
        before_sleep=None if on_retry is None else
        lambda state: on_retry(state.outcome.exception()),
        reraise=True)(attempt)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE) and not isinstance(exc, OutOfCluster)


def _stop(policy: Policy, started: float, deadline: float | None) -> Callable:
    """tenacity's stop condition (its attempts are the second one on): the attempt limit,
    the retry time of the error at hand, or a next attempt that would start too late."""
    def stop(state: tenacity.RetryCallState) -> bool:
        unavailable = isinstance(state.outcome.exception(), EngineUnavailable)
        end = started + (policy.unavailable_seconds if unavailable else policy.seconds)
        if deadline is not None:
            end = min(end, deadline)
        return (state.attempt_number >= policy.attempts - 1
                or time.monotonic() + state.upcoming_sleep >= end)
    return stop
