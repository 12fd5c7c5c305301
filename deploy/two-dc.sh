#!/usr/bin/env bash
# Two-datacenter replication example on one machine: see deploy/two_dc.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python deploy/two_dc.py "$@"
