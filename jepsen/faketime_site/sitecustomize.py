"""Loaded through PYTHONPATH into a metaserver that runs under libfaketime (the clock
nemesis): Debian's libfaketime 0.9.10 breaks Python 3.11's time.sleep, whose
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) it hands a negative time (EINVAL with
FAKETIME_DONT_FAKE_MONOTONIC, wolfcw/libfaketime#426). Sleeping through select(), which
it leaves alone, keeps the server's own timers working while its wall clock is skewed."""

import select
import time


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
