#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite (HYPOTHESIS_PROFILE=ci unless set).
# Extra args go to pytest, e.g. `scripts/test.sh -k model`.
# The MariaDB and PostgreSQL tests start private servers from Debian's mariadb-server and
# postgresql packages: installed here when missing (unless METASERVER_TEST_MYSQL_URL names
# a MariaDB/MySQL server to use instead). The Galera tests start a 3-node cluster of
# mariadbd with galera-4 (state transfers by rsync), the jepsen clock fault libfaketime:
# all installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
missing=()
if [ -z "${METASERVER_TEST_MYSQL_URL:-}" ] && ! PATH="$PATH:/usr/sbin" command -v mariadbd >/dev/null; then
  missing+=(mariadb-server)
fi
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ! -e /usr/lib/galera/libgalera_smm.so ]; then
  missing+=(galera-4)
fi
if ! command -v rsync >/dev/null; then
  missing+=(rsync)
fi
if ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1; then
  missing+=(faketime)      # the jepsen clock-skew fault
fi
if ! command -v fusermount3 >/dev/null; then
  missing+=(fuse3)         # metafs (tests/test_metafs.py): libfuse3 and fusermount3
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
