"""Generated gRPC/protobuf modules for API v1 (see proto/generate.sh); do not edit."""
