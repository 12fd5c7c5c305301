"""Lag figures that are true when it matters: every stream batch carries the primary's
newest sequence, so a follower behind under load says so, and a cut link makes the
reported lag grow (time since last contact is its own figure) instead of reading 0."""

from __future__ import annotations

import pathlib
import sys
import threading
import time

from prometheus_client import REGISTRY

from conftest import format_url, free_port
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen.faultproxy import FaultProxy  # noqa: E402
from metaserver.client import Client
from metaserver.service import ServerConfig, start
from metaserver.testing.metaserver_process import status, wait_for
from metaserver.types import ROOT_INO


def test_lag_grows_while_the_link_is_cut_under_load(tmp_path):
    primary = start(ServerConfig(meta_url=format_url(f"rocksdb+unsafe-nosync://{tmp_path}/p"),
                                 listen="127.0.0.1:0"))
    proxy = FaultProxy(free_port(), primary.address).start()
    follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                  follow=proxy.address))
    stop = threading.Event()

    def load():
        with Client(primary.address) as c:
            d = c.mkdir(ROOT_INO, "load").ino
            for i in range(200_000):          # bounded in count and by `stop`
                if stop.is_set():
                    return
                b = c.batch()
                for j in range(50):
                    b.create(d, f"{i}-{j}")
                b.run()

    writer = threading.Thread(target=load)
    try:
        writer.start()
        wait_for(lambda: follower.node.follower.applied > 500, what="the follower applying")
        assert status(follower.address).last_contact_seconds < 2
        proxy.set(blackhole=True)
        proxy.reset()
        cut_at = time.monotonic()
        samples = []
        while time.monotonic() - cut_at < 6:
            s = status(follower.address)
            samples.append((time.monotonic() - cut_at, s.lag_seconds, s.last_contact_seconds,
                            REGISTRY.get_sample_value("metaserver_replication_lag_seconds")))
            time.sleep(0.5)
        primary_seq = primary.engine.last_seq()
        late = [s for s in samples if s[0] > 4]
        assert late and all(lag > 3 for _, lag, _, _ in late), samples
        assert all(contact > 3 for _, _, contact, _ in late), samples
        assert all(metric > 3 for _, _, _, metric in late), samples
        lags = [lag for _, lag, _, _ in samples]
        assert lags[-1] > lags[len(lags) // 2] > 0, samples      # growing, never stuck at 0
        assert follower.node.follower.applied < primary_seq      # it really is behind
        # Link back: the follower catches up and the lag falls back to (about) 0.
        stop.set()
        writer.join(30)
        proxy.set(blackhole=False)
        # A commit whose client gave up can still land after the writer stops, so
        # catching up means reaching whatever the primary holds now, lag 0 included.
        wait_for(lambda: follower.node.follower.applied >= primary.engine.last_seq()
                 and status(follower.address).lag_records == 0, what="catch-up after the cut")
        wait_for(lambda: status(follower.address).lag_seconds < 1, what="lag back to 0")
    finally:
        stop.set()
        writer.join(30)
        follower.stop()
        proxy.stop()
        primary.stop()
