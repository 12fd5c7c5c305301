"""metabench, the mdtest-style load tool: tree shapes follow mdtest's formulas, phases
are accounted for, the stonewall stops cleanly, the JSON carries every figure, bad
flags fail in one line, and small runs work end to end (in process and over gRPC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from metabench import cli
from metabench.config import ConfigError, from_args
from metabench.execute import execute
from metabench.phases import plan
from metabench.targets import Item
from metabench.tree import dirs_in_tree, node_name, shape
from conftest import free_port

METABENCH = [sys.executable, "-m", "metabench.cli"]


# --- tree shapes -------------------------------------------------------------------------

@pytest.mark.parametrize("depth, branch, dirs", [
    (0, 1, 1), (0, 5, 1), (3, 1, 4), (1, 3, 4), (2, 2, 7), (3, 10, 1111)])
def test_directory_count_follows_mdtest(depth, branch, dirs):
    assert dirs_in_tree(depth, branch) == dirs


def _items_per_node(s) -> Counter:
    return Counter(s.item_dir(i) for i in range(s.items))


def test_items_given_spread_over_every_directory_rounded_down():
    s = shape(depth=2, branch=2, items=100, items_per_dir=0, leaf_only=False)
    assert (s.dirs, s.items_per_dir, s.items) == (7, 14, 98)     # 100 // 7 = 14; 14 * 7
    assert _items_per_node(s) == {node: 14 for node in range(7)}


def test_leaves_only_puts_items_in_the_deepest_level():
    s = shape(depth=2, branch=3, items=100, items_per_dir=0, leaf_only=True)
    assert (s.dirs, s.item_dirs, s.items_per_dir, s.items) == (13, 9, 11, 99)
    per_node = _items_per_node(s)
    assert set(per_node) == set(range(4, 13))                    # nodes at depth 2
    assert all(s.depth_of(node) == 2 for node in per_node)
    assert set(per_node.values()) == {11}


def test_items_per_dir_given_sets_the_item_count():
    s = shape(depth=1, branch=3, items=0, items_per_dir=100, leaf_only=False)
    assert (s.items, s.total_dirs) == (400, 4)                   # the JuiceFS mdtest shape
    s = shape(depth=1, branch=3, items=0, items_per_dir=100, leaf_only=True)
    assert (s.items, s.item_dirs) == (300, 3)


def test_both_counts_repeat_the_tree():
    s = shape(depth=1, branch=2, items=700, items_per_dir=100, leaf_only=False)
    assert (s.loops, s.total_dirs) == (3, 9)
    assert max(_items_per_node(s).values()) == 100
    assert s.parent(3) is None and s.parent(4) == 3              # copy 2's top and child


def test_unique_trees_are_named_per_process_shared_tree_is_not():
    s = shape(depth=1, branch=2, items=0, items_per_dir=1, leaf_only=False)
    assert node_name(s, 0, True, 0) != node_name(s, 0, True, 1)
    assert node_name(s, 0, False, 0) == node_name(s, 0, False, 1)


def test_too_few_items_for_the_tree_is_a_config_error():
    with pytest.raises(ConfigError):
        shape(depth=3, branch=10, items=5, items_per_dir=0, leaf_only=False)


# --- options and phases ------------------------------------------------------------------

def test_presets_set_mdtest_flags():
    easy = from_args(["--io500-easy", "-n", "10", "--meta-url", "memory://"])
    assert easy.unique_dir and easy.leaf_only and not easy.dirs
    hard = from_args(["--io500-hard", "-n", "10", "--meta-url", "memory://"])
    assert not hard.unique_dir and not hard.dirs and hard.write_bytes == 3901
    assert hard.depth == 0


def test_plan_orders_phases_like_mdtest():
    c = from_args(["-n", "4", "-i", "2", "-C", "-T", "-E", "-U", "-r", "--meta-url", "memory://"])
    keys = [p.key for p in plan(c)]
    one = ["tree_create", "dir_create", "dir_stat", "dir_rename", "dir_remove",
           "file_create", "file_stat", "file_read", "file_rename", "file_remove", "tree_remove"]
    assert keys == one * 2                                     # no read for directories
    c = from_args(["-n", "4", "-F", "-T", "--meta-url", "memory://"])
    assert [p.key for p in plan(c)] == ["tree_create", "file_stat", "tree_remove"]


# --- stonewall ---------------------------------------------------------------------------

class SlowTarget:
    """Each request takes a while; counts what it was asked to do."""

    def __init__(self) -> None:
        self.done = 0
        self.lock = threading.Lock()

    def run(self, op, items, batched):
        time.sleep(0.01)
        with self.lock:
            self.done += len(items)
        return [True] * len(items)


def test_stonewall_stops_taking_work_and_finishes_what_it_took():
    target, seen = SlowTarget(), []
    # 10 ms per request, 4 at a time: without the stonewall this takes over 20 s
    outcome = execute(target, "create", list(range(30_000)), lambda i: Item(1, str(i)),
                      lambda i, r: seen.append(i), inflight=4, batch=3,
                      stonewall=1.0)
    assert 0 < outcome.items < 30_000
    assert outcome.items == target.done == len(seen) == 3 * outcome.latencies.size
    assert outcome.errors == 0


def test_execute_counts_failures_per_item():
    class Flaky:
        def run(self, op, items, batched):
            return [OSError(2, "gone") if int(item.name) % 2 else True for item in items]
    outcome = execute(Flaky(), "stat", list(range(10)), lambda i: Item(1, str(i)),
                      lambda i, r: None, inflight=2, batch=4)
    assert (outcome.items, outcome.errors) == (5, 5)
    assert "gone" in outcome.first_error


def test_stonewalled_run_cleans_up_everything_it_created(tmp_path):
    out = tmp_path / "run.json"
    assert cli.main(["-n", "200000", "-F", "-W", "0.2", "--inflight", "2", "--meta-url",
                     "memory://", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    phases = doc["phases"]
    assert 0 < phases["file_create"]["items"] <= 200_000
    assert all(p["errors"] == 0 for p in phases.values())      # the tree came down empty
    assert phases["tree_remove"]["items"] == 1


# --- end to end --------------------------------------------------------------------------

PHASE_FIELDS = {"rate", "min", "max", "mean", "stddev", "items", "errors"}


def _check_schema(doc: dict) -> None:
    assert {"config", "machine", "phases", "baselines", "ratios", "command"} <= set(doc)
    assert doc["machine"]["cpus"] >= 1
    for key, figures in doc["phases"].items():
        assert PHASE_FIELDS <= set(figures), key
        assert {"p50", "p99", "p99.9"} <= set(figures["latency_ms"]), key


def test_in_process_run_accounts_for_every_item(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["-n", "24", "-z", "1", "-b", "2", "-i", "2", "-w", "4096", "-C", "-T", "-E",
            "-U", "-r", "--inflight", "3", "--meta-url", "memory://", "--json", str(out),
            "--baseline", f"raw,localfs:{tmp_path}", "--window", "0.05"]
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    _check_schema(doc)
    phases = doc["phases"]
    assert phases["tree_create"]["items"] == 2 * 3              # 2 iterations x 3 dirs
    for key in ("dir_create", "dir_stat", "dir_rename", "dir_remove", "file_create",
                "file_stat", "file_read", "file_rename", "file_remove"):
        assert phases[key]["items"] == 2 * 24, key              # 8 per directory
        assert phases[key]["errors"] == 0, key
        assert len(phases[key]["rates"]) == 2
    # raw is interleaved in the item phases; localfs runs the whole plan after
    assert set(doc["ratios"]["raw"]) == {key for key in phases if not key.startswith("tree")}
    assert doc["baselines"]["raw"]["file_create"]["items"] > 0
    assert set(doc["ratios"][f"localfs:{tmp_path}"]) == set(phases)
    assert doc["baselines"][f"localfs:{tmp_path}"]["file_create"]["items"] == 48
    assert list(tmp_path.iterdir()) == [out]                    # localfs cleaned up
    printed = capsys.readouterr().out
    assert "File creation" in printed and "x localfs" in printed


@pytest.fixture(scope="module")
def server():
    from metaserver.service import ServerConfig, start
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    yield srv
    srv.stop()


def test_served_run_with_batches_processes_and_baselines(server, tmp_path):
    out, png = tmp_path / "run.json", tmp_path / "run.png"
    argv = ["-n", "40", "-I", "10", "-u", "-P", "2", "--inflight", "2", "--batch", "8",
            "--server", server.address, "--baseline", "echo,raw", "--json", str(out),
            "--raw-url", f"rocksdb://{tmp_path}/raw", "--window", "0.1", "--plot", str(png)]
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    _check_schema(doc)
    assert doc["config"]["batch"] == 8 and doc["config"]["processes"] == 2
    assert doc["phases"]["file_create"]["items"] == 2 * 40      # 4 loops of 10 per process
    assert doc["phases"]["tree_create"]["items"] == 2 * 4       # unique trees
    assert doc["ratios"]["echo"]["file_stat"] > 0
    assert doc["ratios"]["raw"]["file_create"] > 0        # a durable raw store per process
    assert png.stat().st_size > 0
    # nothing is left behind on the server
    from metaserver.client import Client
    with Client(server.address) as c:
        assert [e.name for e in c.readdir(1)] == []


def test_echo_baseline_alternates_with_the_target_in_windows(server, tmp_path):
    out = tmp_path / "run.json"
    argv = ["-n", "1500", "-F", "-C", "-T", "-P", "2", "--inflight", "2", "--server",
            server.address, "--baseline", "echo", "--window", "0.1", "--json", str(out)]
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["interleaved"] == {"window_s": 0.1, "baselines": ["echo"]}
    for key in ("file_create", "file_stat"):
        for rank in (0, 1):
            mine = sorted((w for w in doc["windows"][key] if w[1] == rank), key=lambda w: w[4])
            labels = [w[2] for w in mine]
            assert len(labels) >= 4, labels                  # several rounds
            assert labels == ["metaserver", "echo"] * (len(labels) // 2), labels
            assert [w[3] for w in mine] == [n // 2 for n in range(len(mine))]
            assert all(a[5] <= b[4] for a, b in zip(mine, mine[1:]))   # one after another
            assert sum(w[6] for w in mine if w[2] == "metaserver") == 1500
        paired = doc["paired"]["echo"][key]
        assert paired["windows"] >= 2
        assert paired["ratio"]["min"] <= doc["ratios"]["echo"][key] <= paired["ratio"]["max"]
        assert paired["baseline"]["min"] > 0
    # the two processes switch together: their windows of one round overlap in time
    first = {w[1]: w for w in doc["windows"]["file_create"] if w[3] == 1 and w[2] == "echo"}
    assert first[0][4] < first[1][5] and first[1][4] < first[0][5]


def test_scale_writes_steps_and_projection(tmp_path):
    out = tmp_path / "scale.json"
    assert cli.main(["scale", "--steps", "300,600", "--sample", "40", "--batch", "10",
                     "--meta-url", "memory://", "--json", str(out),
                     "--table", str(tmp_path / "scale.md")]) == 0
    doc = json.loads(out.read_text())
    assert [s["files"] for s in doc["steps"]] == [300, 600]
    for step in doc["steps"]:
        assert step["list"]["entries"] == step["files"] and step["list"]["complete"]
        for phase in ("create", "stat", "rename", "remove", "readdir_page"):
            assert step[phase]["rate"] > 0
    assert {"disk_bytes", "rss_bytes", "create_seconds", "list_10m_seconds", "model"} \
        <= set(doc["projection"])
    assert "Projection" in (tmp_path / "scale.md").read_text()


# --- one line on bad input ---------------------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["--bogus"], "unrecognized arguments"),
    (["-n", "x", "--meta-url", "memory://"], "not a number"),
    (["-n", "10", "-F", "-D", "--meta-url", "memory://"], "exclude each other"),
    (["-n", "10", "--server", "nohost"], "HOST:PORT"),
    (["-n", "10", "--server", f"127.0.0.1:{free_port()}"], "cannot reach"),
    (["-n", "10"], "cannot reach"),                 # the default server, not running
    (["-n", "10", "--meta-url", "foo://x"], "unknown engine"),
    (["-n", "10", "--meta-url", "memory://", "--baseline", "ping"], "unknown baseline"),
    (["-n", "10", "--meta-url", "memory://", "--baseline", "echo"], "needs a server"),
    (["-n", "10", "-P", "2", "--meta-url", "memory://"], "one process"),
    (["scale", "--to", "lots"], "not a number"),
])
def test_bad_input_fails_in_one_line(argv, says):
    done = subprocess.run([*METABENCH, *argv], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "METASERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr
