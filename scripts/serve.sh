#!/usr/bin/env bash
# Installs what is needed and runs the server on the embedded RocksDB engine.
# Data goes to ./metaserver-data; listens on 127.0.0.1:7420. Extra args go to `metaserver serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/metaserver serve "$@"
