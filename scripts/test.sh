#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite (HYPOTHESIS_PROFILE=ci unless set).
# Extra args go to pytest, e.g. `scripts/test.sh -k model`.
# The MariaDB tests start a private server from Debian's mariadb-server: installed here
# when missing (unless METASERVER_TEST_MYSQL_URL names a server to use instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
if [ -z "${METASERVER_TEST_MYSQL_URL:-}" ] && ! PATH="$PATH:/usr/sbin" command -v mariadbd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
fi
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
