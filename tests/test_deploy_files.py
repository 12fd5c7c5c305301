"""deploy/: what can be checked without systemd, Docker or a cluster. The example config
loads through the server's loader and names every key; every `metaserver` command in
the unit, the Dockerfile and the manifests names only flags that command has; the
manifests parse, and their probes ask the gRPC health service on a port the command
serves it on."""

from __future__ import annotations

import json
import pathlib
import re
import shlex

import typer
import yaml

from metaserver.cli.serve import app
from metaserver.service.config import ServerConfig, load_config

DEPLOY = pathlib.Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def _options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    return {opt for param in group.commands[command].params for opt in param.opts
            + param.secondary_opts}


def _check(argv: list[str], where: str) -> str:
    """Assert `metaserver SUBCOMMAND --flags...` uses only flags SUBCOMMAND has; returns
    the subcommand."""
    command = argv[0]
    assert command in ("serve", "format"), f"{where}: unknown subcommand {command}"
    flags = {a.split("=")[0] for a in argv[1:] if a.startswith("--")}
    unknown = flags - _options(command)
    assert not unknown, f"{where}: metaserver {command} has no {sorted(unknown)}"
    return command


def _invocations(words: list[str]) -> list[list[str]]:
    """The argument lists after each `metaserver` (or a path ending in it) in `words`."""
    starts = [i for i, w in enumerate(words) if w == "metaserver" or w.endswith("/metaserver")]
    return [words[i + 1:(starts + [len(words)])[n + 1]] for n, i in enumerate(starts)]


def test_example_config_loads_and_documents_every_key():
    path = DEPLOY / "metaserver.toml"
    config = load_config(str(path))
    assert config.listen == "0.0.0.0:7420" and config.tls_cert and config.token_store
    written = set(re.findall(r"^([a-z_]+) =", path.read_text(), re.M))
    assert written == set(ServerConfig.model_fields)


def test_systemd_unit_runs_a_known_command_with_hardening():
    unit = (DEPLOY / "metaserver.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    (argv,) = _invocations(shlex.split(exec_start))
    assert _check(argv, "metaserver.service") == "serve"
    config = argv[argv.index("--config") + 1]
    assert config == "/etc/metaserver/metaserver.toml"
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
                   "SystemCallFilter=@system-service", "PrivateDevices=yes"):
        assert re.search(rf"^{re.escape(option)}$", unit, re.M), option
    # The comments' own commands use real flags too.
    comments = " ".join(line.lstrip("# ").rstrip("\\") for line in unit.splitlines()
                        if line.startswith("#"))
    checked = [_check(argv, "unit comment") for argv in _invocations(shlex.split(comments))
               if argv and argv[0] in ("serve", "format")]
    assert checked == ["format"]


def test_dockerfile_command_uses_known_flags():
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert entrypoint == ["metaserver"]
    assert _check(cmd, "Dockerfile") == "serve"
    assert "--health-listen" in cmd and "--token-store" in cmd and "--tls-cert" in cmd


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("initContainers", []) + spec.get("containers", [])


def test_manifests_parse_use_known_flags_and_probe_grpc_health():
    assert {m.name for m in MANIFESTS} == {"primary.yaml", "follower.yaml",
                                           "stateless-mysql.yaml"}
    kinds = set()
    for manifest in MANIFESTS:
        for doc in yaml.safe_load_all(manifest.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"]
            kinds.add((manifest.name, doc["kind"]))
            for container in _containers(doc):
                words = container.get("command", []) + container.get("args", [])
                if words[:2] == ["sh", "-c"]:
                    invocations = _invocations(shlex.split(words[2]))
                else:                                   # the image's ENTRYPOINT: metaserver
                    invocations = [container.get("args", [])]
                for argv in invocations:
                    command = _check(argv, f"{manifest.name} {container['name']}")
                    if command != "serve":
                        continue
                    health = argv[argv.index("--health-listen") + 1]
                    for probe in ("readinessProbe", "livenessProbe"):
                        assert container[probe]["grpc"]["port"] == int(health.split(":")[1])
    assert ("primary.yaml", "StatefulSet") in kinds and ("follower.yaml", "StatefulSet") in kinds
    assert ("stateless-mysql.yaml", "Deployment") in kinds
    for manifest in ("primary.yaml", "follower.yaml"):
        (sts,) = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / manifest).read_text())
                  if d["kind"] == "StatefulSet"]
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def _exported_metric_names() -> set[str]:
    """Every sample name the server's metrics can have (import the server: it defines
    them; a follower's are exported once it runs one)."""
    import itertools

    import prometheus_client

    import metaserver.service.server  # noqa: F401
    from metaserver.service.follower import REPLICATION_METRICS
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "info": ("_info",), "gauge": ("",)}
    families = itertools.chain(prometheus_client.REGISTRY.collect(),
                               *(metric.collect() for metric in REPLICATION_METRICS))
    return {family.name + suffix for family in families
            for suffix in suffixes.get(family.type, ("",))}


def test_grafana_dashboard_asks_for_metrics_the_server_exports():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    asked = {name for e in exprs for name in re.findall(r"metaserver_[a-z_]+", e)}
    assert len(asked) >= 8
    assert not asked - _exported_metric_names()
