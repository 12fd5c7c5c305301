"""The NEMESIS seam: faults injected into a deployment, each undone by a final heal.

A nemesis has `name`, `start(deployment, rng) -> dict` (what it did: the value of the
history's nemesis info op; always with "target") and `heal(deployment) -> dict` (undo
it, then `deployment.heal()`: afterwards every server answers). The runner decides how
long a fault lasts (a pause must outlast every client timeout). One nemesis instance
handles one fault at a time.

  kill         SIGKILL a random metaserver or engine node; heal restarts it
  kill-engine  SIGKILL a database node (MariaDB, a Galera node) under load
  pause        SIGSTOP a random metaserver or engine node; heal SIGCONTs it
  partition    galera: one node cut off the other two (gmcast.isolate); its side must
               refuse; heal reconnects it and waits until it is Synced
  latency      latency + jitter on a random link proxy
  blackhole    a link holds every byte (silent partition)
  one-way      a link delivers requests, holds replies
  reset        every connection on a link is closed at once
  bandwidth    a link capped at a few KB/s
  clock        a metaserver restarted under libfaketime with its wall clock off by
               30-300 s either way; heal restarts it with the true clock
  switchover   follower deployment: Promote (fence the old primary, wait, promote)
  failover     follower deployment: cut the old primary off, Promote(force); at heal
               the old primary restarts with --rejoin as a follower of the new one

switchover and failover return {"target": promoted node, "old_primary": node, "epoch":
NEW_EPOCH, "at": [OLD_EPOCH, FORK_SEQ], "forced": bool, "lost": [[OLD_EPOCH, seq], ...]}.
For a failover the lost sequences are only known once the old primary has rejoined and
written its rollback file, so its start() has no "lost": its heal() result has it
(with "rollback_file").
"""

from __future__ import annotations

import glob
import os
import random
import time
from pathlib import Path

import grpc

from jepsen.deploy import DEPLOYMENTS, Deployment, FollowerDeployment
from jepsen.faultproxy import FaultProxy
from metaserver import rollback
from metaserver.v1 import replication_pb2 as rpb

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
FAKETIME_SITE = str(Path(__file__).resolve().parent / "faketime_site")
PROMOTE_TIMEOUT_S = 10.0
PROMOTE_RETRY_S = 20.0


class Nemesis:
    name = ""
    needs = ""           # a deployment feature it needs ("links", "engine", "failover")

    @classmethod
    def unavailable(cls) -> str | None:
        """Why it cannot run on this machine, or None."""
        return None

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        raise NotImplementedError

    def heal(self, deployment: Deployment) -> dict:
        return deployment.heal()


class Kill(Nemesis):
    """SIGKILL one process; deployment.heal() restarts whatever is dead."""

    name = "kill"

    def candidates(self, deployment: Deployment) -> dict:
        return deployment.processes()

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        name = rng.choice(sorted(self.candidates(deployment)))
        proc = deployment.processes()[name]
        pid = proc.pid
        proc.kill()
        return {"target": name, "kind": proc.kind, "pid": pid}


class KillEngine(Kill):
    """SIGKILL a database node (mid-transaction when clients are busy)."""

    name = "kill-engine"
    needs = "engine"

    def candidates(self, deployment: Deployment) -> dict:
        return deployment.engines()


class Pause(Nemesis):
    name = "pause"

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        name = rng.choice(sorted(deployment.processes()))
        proc = deployment.processes()[name]
        proc.pause()
        return {"target": name, "kind": proc.kind, "pid": proc.pid}


class Partition(Nemesis):
    """Cut one Galera node off the other two (gmcast.isolate): the minority side must
    refuse (its metaserver answers EIO at once, never a stale or lost write) while the
    majority goes on. Heal reconnects it and waits until it is Synced again."""

    name = "partition"
    needs = "partition"
    SYNC_TIMEOUT_S = 90.0

    def __init__(self) -> None:
        self.target = ""

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        self.target = rng.choice(sorted(deployment.engines()))
        deployment.engines()[self.target].node.isolate(True)
        return {"target": self.target, "minority": [self.target]}

    def heal(self, deployment: Deployment) -> dict:
        node = deployment.engines()[self.target].node
        node.isolate(False)
        deadline = time.monotonic() + self.SYNC_TIMEOUT_S
        while not node.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.target} did not rejoin within "
                                   f"{self.SYNC_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        return {"target": self.target, **deployment.heal()}


class LinkFault(Nemesis):
    """A fault on one random link proxy; deployment.heal() clears it."""

    needs = "links"

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        name = rng.choice(sorted(deployment.proxies()))
        return {"target": name, **self.apply(deployment.proxies()[name], rng)}

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        raise NotImplementedError


class Latency(LinkFault):
    name = "latency"

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        latency, jitter = round(rng.uniform(0.05, 0.3), 3), round(rng.uniform(0.0, 0.1), 3)
        proxy.set(latency=latency, jitter=jitter)
        return {"latency": latency, "jitter": jitter}


class Blackhole(LinkFault):
    name = "blackhole"

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        proxy.set(blackhole=True)
        return {}


class OneWay(LinkFault):
    name = "one-way"

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        proxy.set(drop_replies=True)
        return {"held": "replies"}


class Reset(LinkFault):
    name = "reset"

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        proxy.reset()
        return {}


class Bandwidth(LinkFault):
    name = "bandwidth"

    def apply(self, proxy: FaultProxy, rng: random.Random) -> dict:
        rate = rng.choice([4_000, 16_000, 64_000])
        proxy.set(bandwidth=rate)
        return {"bytes_per_s": rate}


class Clock(Nemesis):
    """A metaserver restarted with its wall clock skewed (libfaketime; its monotonic
    clock stays true, so timeouts keep working)."""

    name = "clock"

    def __init__(self) -> None:
        self.target = ""

    @classmethod
    def unavailable(cls) -> str | None:
        if not os.path.exists(FAKETIME_LIB):
            return f"libfaketime is not installed ({FAKETIME_LIB}; apt-get install faketime)"
        return None

    def start(self, deployment: Deployment, rng: random.Random) -> dict:
        self.target = rng.choice(sorted(deployment.metaservers()))
        offset = rng.choice([-1, 1]) * rng.randint(30, 300)
        self._restart(deployment, {
            "LD_PRELOAD": FAKETIME_LIB, "FAKETIME": f"{offset:+d}s",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [FAKETIME_SITE,
                                                        os.environ.get("PYTHONPATH")]))})
        return {"target": self.target, "offset_s": offset}

    def heal(self, deployment: Deployment) -> dict:
        if self.target:
            self._restart(deployment, {})
        return {"target": self.target, **deployment.heal()}

    def _restart(self, deployment: Deployment, env: dict[str, str]) -> None:
        proc = deployment.metaservers()[self.target]
        proc.stop()
        proc.server.env = env
        proc.start()
        deployment.wait_serving()     # a restarted follower: until it hears its primary


class Switchover(Nemesis):
    """Planned switchover: nothing acknowledged is lost. At heal the fenced old primary
    restarts as a follower of the new one (refused if it held records after the fork:
    that would be a lost write, so the heal fails loudly)."""

    name = "switchover"
    needs = "failover"
    forced = False

    def __init__(self) -> None:
        self.old = ""

    def start(self, deployment: FollowerDeployment, rng: random.Random) -> dict:
        self.old = deployment.primary_name()
        target = rng.choice(deployment.follower_names())
        self.cut(deployment)
        reply = self.promote(deployment, target)
        at = [reply.promoted_at_epoch, reply.promoted_at_seq]
        done = {"target": target, "old_primary": self.old, "epoch": reply.epoch, "at": at,
                "forced": self.forced}
        if reply.old_primary_fenced:     # its log ends at old_primary_seq: all known now
            done["lost"] = [[at[0], seq] for seq in range(at[1] + 1, reply.old_primary_seq + 1)]
        return done

    def cut(self, deployment: FollowerDeployment) -> None:
        """What happens to the old primary first (nothing: it answers)."""

    def promote(self, deployment: FollowerDeployment, target: str) -> rpb.PromoteReply:
        """Promote, run again while it is refused, as an operator would: a switchover
        promotes nothing when the old primary cannot be fenced yet (the follower's
        channel to a just-restarted primary may still be reconnecting)."""
        deadline = time.monotonic() + PROMOTE_RETRY_S
        while True:
            try:
                return deployment.promote(target, force=self.forced, timeout=PROMOTE_TIMEOUT_S)
            except grpc.RpcError as exc:
                if (exc.code() != grpc.StatusCode.FAILED_PRECONDITION or self.forced
                        or time.monotonic() > deadline):
                    raise
            time.sleep(0.5)

    def heal(self, deployment: FollowerDeployment) -> dict:
        state = deployment.rejoin(self.old, rejoin=self.forced)
        return {"target": self.old, "role": "follower", "epoch": state.epoch,
                **deployment.heal()}


class Failover(Switchover):
    """Forced failover: the old primary is cut off (its link proxy blackholed, open
    connections reset) and the follower promoted where it is. Clients that reach the
    old primary directly may still write there until it hears of the new epoch: those
    writes are the loss window. At heal it rejoins with --rejoin and writes them to a
    rollback file, whose client operations are the "lost" sequences."""

    name = "failover"
    forced = True

    def cut(self, deployment: FollowerDeployment) -> None:
        link = deployment.link(self.old)
        link.set(blackhole=True)
        link.reset()

    def heal(self, deployment: FollowerDeployment) -> dict:
        directory = deployment.metaservers()[self.old].server.rollback_dir
        before = set(glob.glob(os.path.join(directory, "*.msdump")))
        state = deployment.rejoin(self.old, rejoin=True)
        written = sorted(set(glob.glob(os.path.join(directory, "*.msdump"))) - before)
        lost, epoch = [], None
        for path in written:
            with open(path, "rb") as src:
                epoch = rollback.description(src)["epoch"]
            lost += [[epoch, op.seq] for op in rollback.operations(lambda: open(path, "rb"))]
        return {"target": self.old, "role": "follower", "epoch": state.epoch, "lost": lost,
                "rollback_file": written[-1] if written else None, **deployment.heal()}


NEMESES: dict[str, type[Nemesis]] = {cls.name: cls for cls in (
    Kill, KillEngine, Pause, Partition, Latency, Blackhole, OneWay, Reset, Bandwidth, Clock,
    Switchover, Failover)}


def _fits(nemesis: type[Nemesis], deployment_name: str) -> bool:
    return not nemesis.needs or nemesis.needs in DEPLOYMENTS[deployment_name].features


def applicable(deployment_name: str) -> list[str]:
    """Names of the nemeses that fit the deployment and can run on this machine."""
    return [name for name, cls in NEMESES.items()
            if _fits(cls, deployment_name) and cls.unavailable() is None]


def skipped(deployment_name: str) -> dict[str, str]:
    """Nemeses that fit the deployment but cannot run here, with the reason."""
    return {name: reason for name, cls in NEMESES.items()
            if _fits(cls, deployment_name) and (reason := cls.unavailable())}
