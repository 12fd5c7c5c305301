#!/usr/bin/env bash
# Creates .venv (if missing) and installs metaserver into it, with metabench's extra;
# `--test` adds the test tools.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv .venv; }
extras="[bench]"
[ "${1:-}" = "--test" ] && extras="[test,bench]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
