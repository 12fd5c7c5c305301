"""Structure checks: layer import directions, generated code freshness, module docs."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_layers_hold():
    """import-linter contracts in pyproject.toml: layers, and no grpc below the service."""
    lint = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    result = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_proto_modules_are_up_to_date(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
                    f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                    str(ROOT / "proto/metaserver/v1/metadata.proto")], check=True)
    for name in ("metadata_pb2.py", "metadata_pb2_grpc.py"):
        fresh = (tmp_path / "metaserver/v1" / name).read_text()
        assert fresh == (ROOT / "metaserver/v1" / name).read_text(), \
            f"{name} is stale: run proto/generate.sh"


def test_every_module_says_its_job():
    missing = []
    for package in ("metaserver", "engines"):
        for path in (ROOT / package).rglob("*.py"):
            if "v1" in path.parts:
                continue
            if ast.get_docstring(ast.parse(path.read_text())) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"modules without a docstring: {missing}"
