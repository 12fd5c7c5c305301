"""The jepsen checkers on hand-made histories: a clean one passes every checker, and each
planted anomaly is caught by the right checker with the right kind. Random sequential
histories made by running the model itself always pass replay and serializability."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jepsen.checkers import check_all
from jepsen.history import FINAL, INFO, INVOKE, NEMESIS, OK, Op
from metaserver.errors import FsError
from metaserver.testing.model_fs import ModelFS
from metaserver.types import ROOT_INO, FileType

REG, DIR = int(FileType.REGULAR), int(FileType.DIRECTORY)
READS = {"getattr", "readdir", "lookup"}


class Hist:
    """Builds a history: calls get increasing times and, when mutations end ok, the next
    commit sequence of the current epoch (unless given one)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.t = 0.0
        self.seq = 0
        self.epoch = 1

    def _op(self, process, type, f, value, **kw) -> Op:
        self.t += 1
        op = Op(len(self.ops), self.t, process, type, f, value, **kw)
        self.ops.append(op)
        return op

    def invoke(self, process, f, **args) -> tuple:
        self._op(process, INVOKE, f, {"args": args}, node=args.pop("node", "n1"))
        return process, f, args

    def complete(self, pending: tuple, result=None, type=OK, seq="next", error=None,
                 **extra) -> Op:
        process, f, args = pending
        if seq == "next":
            seq = None
            if type == OK and f not in READS:
                self.seq += 1
                seq = (self.epoch, self.seq)
        value = {"args": args, **({"result": result} if type == OK else {}), **extra}
        return self._op(process, type, f, value, seq=seq, error=error, node="n1")

    def call(self, process, f, result=None, *, type=OK, seq="next", **args) -> Op:
        return self.complete(self.invoke(process, f, **args), result, type, seq)

    def nemesis(self, f, **value) -> Op:
        return self._op(NEMESIS, INFO, f, value)

    def final(self, f, result, **args) -> Op:
        return self._op(FINAL, OK, f, {"args": args, "result": result} if args
                        else {"result": result})


def entry(ino, type=REG, nlink=1):
    return {"ino": ino, "type": type, "nlink": nlink}


def attr(ino, size=0, nlink=1, type=REG):
    return {"ino": ino, "type": type, "mode": 0o644, "size": size, "nlink": nlink,
            "uid": 0, "gid": 0}


def base() -> Hist:
    """Setup: /d (100) holding files a (101) and b (102)."""
    h = Hist()
    h.call("setup", "mkdir", entry(100, DIR, 2), parent=ROOT_INO, name="d")
    h.call("setup", "create", entry(101), parent=100, name="a")
    h.call("setup", "create", entry(102), parent=100, name="b")
    return h


def finish(h: Hist, names=("a", "b"), sizes=(0, 0), fsck_clean=True) -> list[Op]:
    h.final("readdir", sorted(names), ino=100)
    for ino, size in zip((101, 102), sizes):
        h.final("getattr", attr(ino, size), ino=ino)
    tree = [["/", ROOT_INO, DIR, ROOT_INO], ["/d", 100, DIR, ROOT_INO],
            *(["/d/" + n, 101 + i, REG, 100] for i, n in enumerate(("a", "b")) if n in names)]
    h.final("tree", tree)
    h.final("fsck", {"clean": fsck_clean, "problems": [] if fsck_clean else ["nlink of 101"]})
    return h.ops


def kinds(results: dict, checker: str) -> set[str]:
    return {a["kind"] for a in results[checker]["anomalies"]}


def test_clean_history_passes_every_checker():
    h = base()
    h.call(1, "setattr", attr(101, 7), ino=101, size=7)
    h.call(2, "getattr", attr(101, 7), ino=101)
    h.call(2, "create", entry(103), parent=100, name="c")
    h.nemesis("kill", phase="start", target="n1")
    h.call(1, "readdir", ["a", "b", "c"], ino=100, seq=(1, 5))     # a follower read
    h.nemesis("kill", phase="heal", target="n1")
    h.call(1, "link", entry(103, nlink=2), ino=103, parent=100, name="c2")
    h.call(2, "unlink", None, parent=100, name="c")
    h.call(2, "unlink", None, parent=100, name="c2")
    h.call(1, "lookup", entry(101), parent=100, name="a")
    h.call(2, "rename", None, parent=100, name="b", new_parent=100, new_name="b2")
    h.call(2, "rename", None, parent=100, name="b2", new_parent=100, new_name="b")
    h.call(1, "create", type="fail", seq=None, parent=100, name="a")
    results = check_all(finish(h, sizes=(7, 0)))
    for name, result in results.items():
        assert result["valid"] is True, (name, result)
    assert results["lost"]["acknowledged"] == 10 and results["lost"]["present"] == 10
    assert results["recovery"]["max_seconds"] == 2.0     # the next call's completion


def test_lost_acknowledged_create():
    h = base()
    create = h.call(1, "create", entry(103), parent=100, name="c")
    results = check_all(finish(h))          # the final listing has no "c"
    assert kinds(results, "lost") == {"lost-write"}
    assert results["lost"]["lost_undocumented"] == 1
    assert results["lost"]["anomalies"][0]["ops"][-1] == create.index


def test_promotion_lost_list_must_be_exactly_the_commits_beyond_the_fork():
    h = base()                                                   # seqs 1..3
    listed = h.call(1, "setattr", attr(101, 5), ino=101, size=5)  # seq 4: not beyond
    h.call(1, "setattr", attr(102, 6), ino=102, size=6)           # seq 5: the fork
    unlisted = h.call(2, "create", entry(103), parent=100, name="c")      # seq 6: lost
    h.nemesis("failover", phase="start", epoch=2, at=[1, 5], forced=True, old_primary="n9")
    h.nemesis("failover", phase="heal", lost=[[1, 4]])
    h.epoch = 2
    results = check_all(finish(h, sizes=(5, 6)))
    lost = results["lost"]
    assert kinds(results, "lost") == {"lost-not-beyond-fork", "lost-unlisted"}
    by_kind = {a["kind"]: a["ops"] for a in lost["anomalies"]}
    assert by_kind == {"lost-not-beyond-fork": [listed.index], "lost-unlisted": [unlisted.index]}
    assert results["replay"]["valid"] is True       # the lost create is not replayed


def test_documented_loss_passes():
    h = base()
    h.call(1, "create", entry(103), parent=100, name="c")        # seq 4, beyond the fork
    h.nemesis("failover", phase="start", epoch=2, at=[1, 3], forced=True, old_primary="n9")
    h.nemesis("failover", phase="heal", lost=[[1, 4]])
    results = check_all(finish(h))
    assert all(r["valid"] is True for r in results.values()), results
    assert results["lost"]["lost_documented"] == 1


def test_read_skew_is_g_single():
    h = base()
    h.call(1, "setattr", attr(101, 1), ino=101, size=1)
    h.call(1, "setattr", attr(102, 2), ino=102, size=2)
    h.call(2, "getattr", attr(102, 2), ino=102)         # the newer write,
    h.call(2, "getattr", attr(101, 0), ino=101)         # then the state before the older
    results = check_all(finish(h, sizes=(1, 2)))
    anomaly, = results["serializable"]["anomalies"]
    assert anomaly["kind"] == "G-single" and anomaly["strict"] is True


def test_store_buffering_on_follower_reads_is_g2():
    h = base()
    p1 = h.invoke(1, "setattr", ino=102, size=2)
    p2 = h.invoke(2, "setattr", ino=101, size=1)
    h.complete(p1, attr(102, 2))                        # seq 4
    h.complete(p2, attr(101, 1))                        # seq 5
    r1 = h.invoke(1, "getattr", ino=101)
    r2 = h.invoke(2, "getattr", ino=102)
    h.complete(r1, attr(101, 0), seq=(1, 3))            # each misses the other's write
    h.complete(r2, attr(102, 0), seq=(1, 3))
    results = check_all(finish(h, sizes=(1, 2)))
    kinds_found = {(a["kind"], a["strict"]) for a in results["serializable"]["anomalies"]}
    assert kinds_found == {("G2", True)}
    assert kinds(results, "prefix") == {"read-your-writes"}


def test_acknowledged_write_committed_after_a_later_one_is_g0():
    h = base()
    h.call(1, "setattr", attr(101, 1), ino=101, size=1, seq=(1, 9))
    h.call(2, "setattr", attr(101, 2), ino=101, size=2, seq=(1, 8))
    results = check_all(finish(h, sizes=(1, 0)))
    anomaly, = results["serializable"]["anomalies"]
    assert anomaly["kind"] == "G0" and anomaly["strict"] is True


def test_read_of_a_write_that_commits_after_a_later_invoked_one_is_g1c():
    h = base()
    w1 = h.invoke(1, "setattr", ino=101, size=1)
    h.call(2, "getattr", attr(101, 1), ino=101)          # sees w1 before it is done
    h.call(2, "setattr", attr(101, 2), ino=101, size=2, seq=(1, 4))
    h.complete(w1, attr(101, 1), seq=(1, 5))             # yet w1 commits after
    results = check_all(finish(h, sizes=(1, 0)))
    assert [a["kind"] for a in results["serializable"]["anomalies"]] == ["G1c"]


def test_follower_read_that_is_no_prefix():
    h = base()
    h.call(1, "create", entry(103), parent=100, name="c")       # seq 4
    h.call(1, "create", entry(104), parent=100, name="e")       # seq 5
    h.call(2, "readdir", ["a", "b", "e"], ino=100, seq=(1, 5))  # e without c: no prefix
    results = check_all(finish(h, names=("a", "b", "c", "e")))
    assert kinds(results, "prefix") == {"non-prefix"}
    assert results["replay"]["valid"] is True


def test_follower_reads_going_backwards():
    h = base()
    h.call(1, "create", entry(103), parent=100, name="c")       # seq 4
    h.call(2, "readdir", ["a", "b", "c"], ino=100, seq=(1, 4))
    h.call(2, "readdir", ["a", "b"], ino=100, seq=(1, 3))
    results = check_all(finish(h, names=("a", "b", "c")))
    assert kinds(results, "prefix") == {"non-monotonic"}


def test_read_your_writes_violation():
    h = base()
    h.call(2, "create", entry(103), parent=100, name="c")       # seq 4
    h.call(2, "readdir", ["a", "b"], ino=100, seq=(1, 3))
    results = check_all(finish(h, names=("a", "b", "c")))
    assert kinds(results, "prefix") == {"read-your-writes"}


def test_stale_read_on_the_primary():
    h = base()
    h.call(1, "setattr", attr(101, 5), ino=101, size=5)
    h.call(2, "getattr", attr(101, 0), ino=101)          # invoked after the ack
    results = check_all(finish(h, sizes=(5, 0)))
    assert kinds(results, "replay") == {"stale-read"}


def test_concurrent_read_may_see_either_state():
    h = base()
    w = h.invoke(1, "setattr", ino=101, size=5)
    h.call(2, "getattr", attr(101, 0), ino=101)
    h.call(3, "getattr", attr(101, 5), ino=101)
    h.complete(w, attr(101, 5))
    results = check_all(finish(h, sizes=(5, 0)))
    assert results["replay"]["valid"] is True and results["serializable"]["valid"] is True


def test_info_create_is_applied_when_observed():
    h = base()
    h.call(1, "create", type=INFO, seq=None, parent=100, name="c")
    h.call(2, "readdir", ["a", "b", "c"], ino=100)
    results = check_all(finish(h, names=("a", "b", "c")))
    assert results["replay"]["valid"] is True and results["lost"]["valid"] is True
    assert results["replay"]["applied_on_evidence"] == 1


def test_of_several_unknown_writes_only_the_one_a_read_shows_is_applied():
    """Three writes end unknown (the server died); a later read shows the first one's
    value. The replay applies that one (not all three, which would leave the last)."""
    h = base()
    for size in (7, 8, 9):
        h.call(1, "setattr", type=INFO, seq=None, ino=101, size=size)
    h.call(2, "getattr", attr(101, 7), ino=101)
    results = check_all(finish(h, sizes=(7, 0)))
    assert results["replay"]["valid"] is True and results["lost"]["valid"] is True
    assert results["replay"]["applied_on_evidence"] == 1
    h = base()                               # a value no write made is still caught
    for size in (7, 8):
        h.call(1, "setattr", type=INFO, seq=None, ino=101, size=size)
    h.call(2, "getattr", attr(101, 6), ino=101)
    assert kinds(check_all(finish(h, sizes=(8, 0))), "replay") == {"stale-read"}


def test_an_unknown_rename_an_acknowledged_one_needs_is_applied_alone():
    """An acknowledged rename of d/a is refused by the model unless an unknown rename
    brought `a` back first; another unknown rename that moves it away stays out."""
    h = base()
    h.call(1, "rename", type=INFO, seq=None, parent=100, name="a", new_parent=100,
           new_name="x")
    h.call(2, "rename", type=INFO, seq=None, parent=100, name="x", new_parent=100,
           new_name="a")
    h.call(1, "rename", type=INFO, seq=None, parent=100, name="b", new_parent=100,
           new_name="y")
    h.call(3, "rename", None, parent=100, name="x", new_parent=100, new_name="z")
    h.call(3, "rename", None, parent=100, name="z", new_parent=100, new_name="a")
    results = check_all(finish(h))
    assert results["replay"]["valid"] is True, results["replay"]


def _moved_back_then_renamed_above(unknown_move_back: bool) -> list[Op]:
    """/p/q and /r; r moves under q, comes back with an unknown outcome (or not at all),
    then p moves under r: accepted only if r came back (else r is below p: EINVAL)."""
    h = base()
    h.call("setup", "mkdir", entry(200, DIR, 2), parent=ROOT_INO, name="p")
    h.call("setup", "mkdir", entry(201, DIR, 2), parent=200, name="q")
    h.call("setup", "mkdir", entry(202, DIR, 2), parent=ROOT_INO, name="r")
    h.call(1, "rename", None, parent=ROOT_INO, name="r", new_parent=201, new_name="r")
    if unknown_move_back:
        h.call(1, "rename", type=INFO, seq=None, parent=201, name="r", new_parent=ROOT_INO,
               new_name="r")
    h.call(2, "rename", None, parent=ROOT_INO, name="p", new_parent=202, new_name="p")
    return finish(h)


def test_an_unknown_rename_of_a_directory_above_the_target_explains_an_accepted_move():
    """The replay found an acknowledged directory rename 'refused' (a cycle, EINVAL)
    because the unknown rename that had moved a directory out from under it shares no
    name with it (found by a follower run in CI)."""
    assert check_all(_moved_back_then_renamed_above(True))["replay"]["valid"] is True
    assert kinds(check_all(_moved_back_then_renamed_above(False)), "replay") == {"refused"}


def test_an_unknown_unlink_explains_a_lower_nlink():
    """An unlink's arguments name the directory, not the inode whose nlink it lowers:
    a later read of that inode's nlink is still evidence the unlink happened."""
    h = base()
    h.call(1, "link", entry(101, nlink=2), ino=101, parent=100, name="a2")
    h.call(1, "unlink", type=INFO, seq=None, parent=100, name="a2")
    h.call(2, "getattr", attr(101, 0, nlink=1), ino=101)
    results = check_all(finish(h))
    assert results["replay"]["valid"] is True and results["prefix"]["valid"] is True


def test_a_listing_that_comes_back_is_placed_in_its_window():
    """d holds [a, b], then [b] (a moved out), then an unknown-outcome rename brings a
    back: a follower read at the end sees [a, b] again. It read the latest state, not
    the first version with that listing, so there is no cycle."""
    h = base()
    h.call(1, "rename", None, parent=100, name="a", new_parent=ROOT_INO, new_name="a")
    h.call(1, "rename", type=INFO, seq=None, parent=ROOT_INO, name="a", new_parent=100,
           new_name="a")
    h.call(2, "setattr", attr(102, 3), ino=102, size=3)    # after the move, in real time
    h.call(2, "readdir", ["a", "b"], seq=(1, h.seq), ino=100)
    results = check_all(finish(h, sizes=(0, 3)))
    assert results["serializable"]["valid"] is True, results["serializable"]
    assert results["replay"]["valid"] is True and results["prefix"]["valid"] is True


def test_an_unknown_create_is_placed_where_the_listing_that_shows_it_begins():
    """An unknown create shows in a listing that is concurrent with a later create it
    does not show: the listing matches the state before that create, with the unknown
    one in it (not only the state at the end of its window)."""
    h = base()
    h.call(1, "create", type=INFO, seq=None, parent=100, name="c")
    listing = h.invoke(2, "readdir", ino=100)
    h.call(3, "create", entry(103), parent=100, name="d")
    h.complete(listing, ["a", "b", "c"])
    results = check_all(finish(h, names=("a", "b", "c", "d")))
    assert results["replay"]["valid"] is True, results["replay"]


def test_an_unknown_unlink_of_a_name_listed_afterwards_did_not_happen():
    """Names are never made twice: an unknown unlink whose name a later listing still
    shows did not happen, so it cannot explain a read missing that link."""
    h = base()
    h.call(1, "link", entry(101, nlink=2), ino=101, parent=100, name="a2")
    h.call(1, "unlink", type=INFO, seq=None, parent=100, name="a2")
    h.call(2, "getattr", attr(101, 0, nlink=1), ino=101)       # nlink 1: a2 gone?
    h.call(3, "readdir", ["a", "a2", "b"], ino=100)             # ... no, a2 is there
    results = check_all(finish(h, names=("a", "a2", "b")))
    assert "stale-read" in kinds(results, "replay")


def test_model_refusing_an_acknowledged_mutation():
    h = base()
    h.call(1, "unlink", None, parent=100, name="zz")
    results = check_all(finish(h))
    assert kinds(results, "replay") == {"refused"}


def test_directory_cycle_orphan_and_unclean_fsck():
    h = base()
    h.final("tree", [["/", ROOT_INO, DIR, ROOT_INO], ["/d", 100, DIR, ROOT_INO],
                     ["/x", 200, DIR, 201], ["/y", 201, DIR, 200],       # a cycle
                     ["/d/a", 101, REG, 100], ["/d/o", 300, REG, 999]])  # an orphan
    h.final("fsck", {"clean": False, "problems": ["orphan 999"]})
    results = check_all(h.ops)
    assert kinds(results, "tree") == {"cycle", "orphan", "fsck", "parent"}
    assert results["lost"]["valid"] == "unknown"          # no final reads


def test_missing_pieces_are_unknown_not_crashes():
    results = check_all([])
    assert results["tree"]["valid"] == "unknown" and results["replay"]["valid"] == "unknown"
    h = base()
    h.nemesis("kill", phase="start", target="n1")
    h.nemesis("kill", phase="heal", target="n1")
    results = check_all(h.ops)
    assert kinds(results, "recovery") == {"no-recovery"}
    assert results["tree"]["valid"] == "unknown"


# --- random sequential histories from the model itself ------------------------------------
NAMES = ["a", "b", "c"]
REAL = 1000          # real inode = model inode + REAL (the root excepted): translation is tested


def real(ino: int) -> int:
    return ino if ino == ROOT_INO else ino + REAL


op_strategy = st.tuples(
    st.sampled_from(["mkdir", "create", "unlink", "rmdir", "rename", "link", "setattr",
                     "getattr", "readdir", "lookup"]),
    st.integers(0, 50), st.sampled_from(NAMES), st.integers(0, 50), st.sampled_from(NAMES),
    st.integers(1, 3), st.integers(1, 10**6))


@settings(max_examples=60, deadline=None)
@given(st.lists(op_strategy, max_size=40))
def test_model_made_histories_pass(steps):
    model, h = ModelFS(), Hist()
    for i, (f, x, name, y, new_name, process, size) in enumerate(steps):
        inos = sorted(model.nodes)
        dirs = [n for n in inos if model.nodes[n].is_dir]
        d, d2, ino = dirs[x % len(dirs)], dirs[y % len(dirs)], inos[x % len(inos)]
        model_args = {"mkdir": dict(parent=d, name=name), "create": dict(parent=d, name=name),
                      "unlink": dict(parent=d, name=name), "rmdir": dict(parent=d, name=name),
                      "rename": dict(parent=d, name=name, new_parent=d2, new_name=new_name),
                      "link": dict(ino=ino, parent=d2, name=new_name),
                      "setattr": dict(ino=ino, size=size), "getattr": dict(ino=ino),
                      "readdir": dict(ino=d), "lookup": dict(parent=d, name=name)}[f]
        args = {k: real(v) if k in ("ino", "parent", "new_parent") else v
                for k, v in model_args.items()}
        try:
            value = _run(model, f, model_args)
        except FsError:
            h.call(process, f, type="fail", seq=None, **args)
            continue
        h.call(process, f, _result(model, f, value), **args)
    for ino in sorted(model.nodes):
        if model.nodes[ino].is_dir:
            h.final("readdir", [n.decode() for n in model.readdir(ino=ino)], ino=real(ino))
    results = check_all(h.ops)
    for name in ("replay", "serializable", "lost", "prefix"):
        assert results[name]["valid"] in (True, "unknown"), (name, results[name])
        assert not results[name]["anomalies"], (name, results[name])


def _run(model: ModelFS, f: str, args: dict):
    args = {k: v.encode() if isinstance(v, str) else v for k, v in args.items()}
    if f == "setattr":
        return model.setattr(ino=args["ino"], mask=8, size=args["size"])
    return getattr(model, f)(**args)


def _result(model: ModelFS, f: str, value):
    if f in ("mkdir", "create", "link", "lookup"):
        node = model.nodes[value]
        return entry(real(value), int(node.type), node.nlink)
    if f in ("getattr", "setattr"):
        a = model.getattr(ino=value if f == "setattr" else value["ino"])
        return {**a, "ino": real(a["ino"])}
    if f == "readdir":
        return [n.decode() for n in value]
    return None
