"""metabench: an mdtest-style metadata load tool for metaserver, with baselines measured
in the same run (gRPC echo, the raw engine, a local file system) and a scale curve.

    metabench -n 1000 -P 2 --inflight 8 --server 127.0.0.1:7420 --baseline echo,raw
    metabench --io500-easy -n 20000 --batch 256 --meta-url rocksdb:///tmp/ms --json out.json
    metabench scale --to 10000000 --meta-url rocksdb:///tmp/scale
"""

__version__ = "0.1.0"

import os

# Before grpc is imported: its core's own log lines stay off (as in metaserver.cli);
# metabench reports each failure as one line. A GRPC_VERBOSITY the user set is kept.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
