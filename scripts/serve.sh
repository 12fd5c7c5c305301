#!/usr/bin/env bash
# Installs what is needed and runs the server on the embedded RocksDB engine.
# Data goes to ./metaserver-data; listens on 127.0.0.1:7420. Extra args go to `metaserver serve`.
# The first run formats ./metaserver-data (`metaserver format`), so this works on a fresh
# machine; it is never formatted again, and no other engine is formatted by this script:
# with --meta-url, --data-dir, --config, --follow or METASERVER_META_URL, format it yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
default_engine=1
for arg in "$@"; do
  case "$arg" in
    --meta-url*|--data-dir*|--config*|--follow*|--help) default_engine=0 ;;
  esac
done
if [ "$default_engine" = 1 ] && [ -z "${METASERVER_META_URL:-}" ] && [ ! -e metaserver-data ]; then
  .venv/bin/metaserver format
fi
exec .venv/bin/metaserver serve "$@"
