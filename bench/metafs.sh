#!/usr/bin/env bash
# metafs figures (bench/RESULTS.md, "FUSE client"): mdtest-style create / stat / remove
# of empty files through a metafs mount, beside the same through the gRPC API and on a
# local tmpfs, in one metabench run against one fresh server (RocksDB, fsync on).
# Needs root (FUSE) and Debian's fuse3. $METAFS_FLAGS adds flags to `metafs mount`
# (e.g. "--attr-timeout 1").
#   [METAFS_FLAGS=...] bench/metafs.sh [ITEMS_PER_PROCESS] [PROCESSES] [JSON_OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-2000}
procs=${2:-1}
json=${3:-}
work=$(mktemp -d /tmp/metafs-bench.XXXXXX)
shm=$(mktemp -d /dev/shm/metafs-bench.XXXXXX)
port=$(.venv/bin/python -c 'from metaserver.testing import free_port; print(free_port())')
server_pid=""
cleanup() {
  if grep -qs " $work/mnt " /proc/self/mounts; then
    .venv/bin/metafs umount "$work/mnt" || fusermount3 -u -z "$work/mnt" || true
  fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work" "$shm"
}
trap cleanup EXIT
.venv/bin/metaserver format --meta-url "rocksdb://$work/db" >/dev/null
.venv/bin/metaserver serve --meta-url "rocksdb://$work/db" --listen "127.0.0.1:$port" \
  >"$work/server.log" 2>&1 &
server_pid=$!
mkdir "$work/mnt"
for _ in $(seq 100); do   # the server needs a moment; metafs probes it once per try
  # shellcheck disable=SC2086  # METAFS_FLAGS is a list of flags
  .venv/bin/metafs mount --server "127.0.0.1:$port" --data-dir "$work/data" \
    ${METAFS_FLAGS:-} "$work/mnt" \
    >/dev/null 2>&1 && break
  sleep 0.2
done
grep -qs " $work/mnt " /proc/self/mounts || { echo "metafs did not mount" >&2; exit 1; }
echo "metabench --server 127.0.0.1:$port -n $items -P $procs -F -C -T -r" \
     "--baseline localfs:MOUNT,localfs:TMPFS  (MOUNT=metafs ${METAFS_FLAGS:-} on the same" \
     "server, TMPFS=$shm)"
.venv/bin/metabench --server "127.0.0.1:$port" -n "$items" -P "$procs" -F -C -T -r \
  --baseline "localfs:$work/mnt,localfs:$shm" ${json:+--json "$json"}
