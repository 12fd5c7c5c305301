#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite (HYPOTHESIS_PROFILE=ci unless set).
# Extra args go to pytest, e.g. `scripts/test.sh -k model`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
