"""Session consistency in the client library and metactl: the (epoch, sequence) token
learnt from reply trailers and sent back as headers, against a scripted test server
(what is sent, exactly) and a real primary + follower pair with latency on their link
(what it is for: reading one's writes on a follower)."""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen.faultproxy import FaultProxy  # noqa: E402
from metaserver.client import Client, RetryPolicy, SessionTimeout, SessionToken
from metaserver.client.session import SessionTracker
from metaserver.service import ServerConfig, start
from metaserver.testing import free_port
from metaserver.testing.metaserver_process import status, wait_for
from metaserver.types import ROOT_INO
from metaserver.v1 import metadata_pb2 as pb
from metaserver.v1 import metadata_pb2_grpc

NO_RETRY = RetryPolicy(attempts=1)
LINK_LATENCY_S = 0.3
METACTL = os.path.join(os.path.dirname(sys.executable), "metactl")
SESSION_HEADERS = ("metaserver-epoch", "metaserver-min-seq")


# --- the token ---------------------------------------------------------------------------

def test_token_text_round_trips_and_orders_by_epoch_first():
    assert SessionToken.parse("3:17") == SessionToken(3, 17)
    assert SessionToken.parse(str(SessionToken(3, 17))) == SessionToken(3, 17)
    assert SessionToken.parse("17") == SessionToken(0, 17)
    for bad in ("", "x", "1:", ":5", "-1", "1:2:3"):
        with pytest.raises(ValueError):
            SessionToken.parse(bad)
    assert SessionToken(2, 1) > SessionToken(1, 10**9) > SessionToken(1, 5)


def test_tracker_shared_by_threads_keeps_the_newest_token():
    tracker = SessionTracker(consistent=True)
    tokens = [SessionToken(epoch, seq) for epoch in (1, 2, 3) for seq in range(1, 300)]

    def observe(part):
        for token in part:
            tracker.observe([("metaserver-epoch", str(token.epoch)),
                             ("metaserver-applied-seq", str(token.seq))])
    threads = [threading.Thread(target=observe, args=(tokens[i::8][::-1 if i % 2 else 1],))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.token == max(tokens)


# --- what the client sends: a scripted server ----------------------------------------------

class ScriptedMetadata(metadata_pb2_grpc.MetadataServicer):
    """Answers Lookup, Resolve, Mkdir and Batch; records each call's session headers and
    replies with the trailers (or the failure) queued in `script`."""

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.seen: list[dict[str, str]] = []

    def _answer(self, reply, context):
        self.seen.append({k: v for k, v in context.invocation_metadata()
                          if k in SESSION_HEADERS})
        trailers, failure = self.script.pop(0) if self.script else ((), None)
        context.set_trailing_metadata(trailers)
        if failure == "sleep":
            time.sleep(1)
        elif failure is not None:
            context.abort(failure, "sequence not applied in time")
        return reply

    def Lookup(self, request, context):
        return self._answer(pb.Entry(name=request.name, ino=7, type=2), context)

    def Resolve(self, request, context):
        return self._answer(pb.Entry(name=request.path, ino=7, type=2), context)

    def Mkdir(self, request, context):
        return self._answer(pb.Entry(name=request.name, ino=8, type=2), context)

    def Batch(self, request, context):
        return self._answer(pb.BatchReply(), context)


@pytest.fixture
def scripted():
    servicer = ScriptedMetadata()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    metadata_pb2_grpc.add_MetadataServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def _reply(epoch: int, **seqs: int) -> tuple:
    return ([("metaserver-epoch", str(epoch))] +
            [(f"metaserver-{k.replace('_', '-')}", str(v)) for k, v in seqs.items()], None)


def test_client_sends_newest_epoch_and_session_sequence(scripted):
    servicer, address = scripted
    servicer.script = [_reply(1, applied_seq=5), _reply(1, commit_seq=9),
                       _reply(2, applied_seq=3), _reply(1, applied_seq=50), _reply(2)]
    with Client(address) as c:
        assert c.session_token == SessionToken() and c.last_commit is None
        c.lookup(ROOT_INO, "a")
        c.mkdir(ROOT_INO, "b")
        assert c.last_commit == SessionToken(1, 9)
        c.lookup(ROOT_INO, "a")          # a newer epoch: the session starts over in it
        assert c.session_token == SessionToken(2, 3)
        c.lookup(ROOT_INO, "a")          # an old-epoch follower does not move it back
        c.lookup(ROOT_INO, "a")
    assert servicer.seen == [
        {},
        {"metaserver-epoch": "1", "metaserver-min-seq": "5"},
        {"metaserver-epoch": "1", "metaserver-min-seq": "9"},
        {"metaserver-epoch": "2", "metaserver-min-seq": "3"},
        {"metaserver-epoch": "2", "metaserver-min-seq": "3"},
    ]


def test_without_session_consistency_only_the_epoch_is_sent(scripted):
    servicer, address = scripted
    servicer.script = [_reply(4, commit_seq=11)]
    with Client(address, session_consistency=False, session_token="4:10") as c:
        c.mkdir(ROOT_INO, "b")
        c.lookup(ROOT_INO, "b")
        assert c.session_token == SessionToken(4, 11)
    assert servicer.seen == [{"metaserver-epoch": "4"}] * 2


def test_a_token_handed_over_is_sent_and_only_moves_forward(scripted):
    servicer, address = scripted
    with Client(address, session_token=SessionToken(3, 40)) as c:
        c.advance_session("2:99")        # older: ignored
        c.lookup(ROOT_INO, "a")
        c.advance_session("3:41")
        c.lookup(ROOT_INO, "a")
    assert [s["metaserver-min-seq"] for s in servicer.seen] == ["40", "41"]
    assert {s["metaserver-epoch"] for s in servicer.seen} == {"3"}


def test_server_timeout_is_a_session_timeout_and_not_retried(scripted):
    servicer, address = scripted
    failure = ([("metaserver-errno", str(errno.ETIMEDOUT)), ("metaserver-epoch", "2")],
               grpc.StatusCode.DEADLINE_EXCEEDED)
    servicer.script = [failure, failure]
    with Client(address, session_token="2:1234") as c:
        with pytest.raises(SessionTimeout) as info:
            c.lookup(ROOT_INO, "a")
        assert isinstance(info.value, TimeoutError) and info.value.errno == errno.ETIMEDOUT
        assert info.value.awaited == SessionToken(2, 1234)
        assert "sequence 1234 of epoch 2" in str(info.value)
        assert info.value.filename == "a"
        # A batch is retried on a bare deadline (it may have been applied), not on this.
        with pytest.raises(SessionTimeout):
            c.batch().lookup(ROOT_INO, "a").run()
    assert len(servicer.seen) == 2


def test_bare_grpc_deadline_keeps_its_mapping(scripted):
    servicer, address = scripted
    servicer.script = [((), "sleep")]
    with Client(address, session_token="1:5", timeout=0.2, retry=NO_RETRY) as c:
        with pytest.raises(OSError) as info:
            c.lookup(ROOT_INO, "a")
    assert info.value.errno == errno.ETIMEDOUT and not isinstance(info.value, SessionTimeout)
    assert info.value.filename == address


def test_a_refused_retry_after_a_lost_answer_is_outcome_unknown(scripted):
    """The first attempt of a mutation times out (it may have committed); the retry
    meets a read-only server, which refuses before it looks at the request id. EROFS
    would say "not done": the client says the outcome is unknown (EIO) instead."""
    servicer, address = scripted
    refused = ([("metaserver-errno", str(errno.EROFS))], grpc.StatusCode.FAILED_PRECONDITION)
    servicer.script = [((), "sleep"), refused, refused]
    with Client(address, timeout=0.3) as c:
        with pytest.raises(OSError) as info:
            c.mkdir(ROOT_INO, "b")
        assert info.value.errno == errno.EIO and "outcome unknown" in str(info.value)
        with pytest.raises(OSError) as info:     # no lost answer: EROFS stands
            c.mkdir(ROOT_INO, "c")
        assert info.value.errno == errno.EROFS


# --- a real primary and follower ---------------------------------------------------------

@pytest.fixture
def pair():
    """(primary, follower): the follower reaches the primary through a fault proxy that
    adds LINK_LATENCY_S to every chunk, so it applies a commit no sooner than that."""
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    proxy = FaultProxy(free_port(), primary.address).start()
    follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                  follow=proxy.address))
    try:
        wait_for(lambda: status(follower.address).connected, what="link up")
        proxy.set(latency=LINK_LATENCY_S)
        yield primary, follower
    finally:
        follower.stop()
        proxy.stop()
        primary.stop()


def test_session_token_reads_own_write_on_a_follower(pair):
    primary, follower = pair
    with Client(primary.address) as writer:
        made = writer.mkdir(ROOT_INO, "mine")
        token = writer.session_token
        assert token.epoch >= 1 and token.seq >= 1 and writer.last_commit == token
        with Client(follower.address, session_token=token) as reader:
            assert reader.lookup(ROOT_INO, "mine").ino == made.ino
            assert reader.session_token >= token


def test_without_a_session_a_follower_read_misses_a_fresh_write(pair):
    """A read that ends less than LINK_LATENCY_S after its write began cannot see it:
    the record reaches the follower no sooner. Slower rounds (a loaded machine) prove
    nothing and are tried again."""
    primary, follower = pair
    with Client(primary.address) as writer, \
            Client(follower.address, session_consistency=False) as reader:
        for attempt in range(10):
            began = time.monotonic()
            writer.mkdir(ROOT_INO, f"fresh{attempt}")
            try:
                reader.lookup(ROOT_INO, f"fresh{attempt}")
                seen = True
            except FileNotFoundError:
                seen = False
            if time.monotonic() - began < LINK_LATENCY_S:
                assert not seen
                return
        pytest.fail("no round finished within the link latency")


def test_min_seq_out_of_reach_fails_with_etimedout(pair):
    primary, follower = pair
    epoch = status(primary.address).epoch
    for token in (SessionToken(epoch, 10**9), SessionToken(epoch + 1, 1)):
        with Client(follower.address, session_token=token, timeout=1,
                    retry=NO_RETRY) as reader:
            began = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                reader.lookup(ROOT_INO, "anything")
            assert time.monotonic() - began < 5
        assert info.value.errno == errno.ETIMEDOUT
        assert isinstance(info.value, SessionTimeout) and info.value.awaited == token


def test_a_client_that_saw_a_newer_epoch_makes_a_stale_primary_refuse_writes():
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    try:
        epoch = status(primary.address).epoch
        with Client(primary.address, retry=NO_RETRY) as current:
            current.mkdir(ROOT_INO, "before")
            assert current.session_token.epoch == epoch
        with Client(primary.address, session_token=SessionToken(epoch + 1, 1),
                    retry=NO_RETRY) as newer:
            with pytest.raises(OSError) as info:
                newer.mkdir(ROOT_INO, "after")
        assert info.value.errno == errno.EROFS
    finally:
        primary.stop()


# --- metactl -------------------------------------------------------------------------------

def _metactl(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([METACTL, "--server", address, *args], capture_output=True,
                          text=True, timeout=60)


def test_metactl_prints_commit_seq_and_reads_at_min_seq(pair):
    primary, follower = pair
    made = _metactl(primary.address, "-v", "mkdir", "/viactl")
    assert made.returncode == 0 and made.stdout == ""
    assert made.stderr.startswith("commit-seq ") and made.stderr.count("\n") == 1
    token = SessionToken.parse(made.stderr.split()[1])
    assert token.epoch >= 1 and token.seq >= 1
    listed = _metactl(follower.address, "--min-seq", str(token), "ls", "/")
    assert listed.returncode == 0 and "viactl" in listed.stdout.split()
    # Reads print no commit sequence, even with -v.
    assert _metactl(primary.address, "-v", "ls", "/").stderr == ""


def test_metactl_min_seq_errors_are_one_line(scripted):
    servicer, address = scripted
    bad = _metactl(address, "--min-seq", "soon", "ls", "/")
    assert bad.returncode == 1
    assert bad.stderr == "metactl: --min-seq: 'soon' is not a session token: " \
                         "expected [EPOCH:]SEQ\n"
    servicer.script = [([("metaserver-errno", str(errno.ETIMEDOUT))],
                        grpc.StatusCode.DEADLINE_EXCEEDED)]
    late = _metactl(address, "--min-seq", "2:900", "ls", "/")
    assert late.returncode == 1 and late.stdout == ""
    assert late.stderr == f"metactl: /: {os.strerror(errno.ETIMEDOUT)} " \
                          "(waiting for --min-seq 2:900)\n"
    assert servicer.seen == [{"metaserver-epoch": "2", "metaserver-min-seq": "900"}]
