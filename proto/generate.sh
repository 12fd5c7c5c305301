#!/usr/bin/env bash
# Regenerates metaserver/v1/*_pb2*.py from proto/metaserver/v1/*.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
  proto/metaserver/v1/metadata.proto proto/metaserver/v1/replication.proto \
  proto/metaserver/v1/server.proto
touch metaserver/v1/__init__.py
