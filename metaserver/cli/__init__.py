"""Command-line entry points: `metaserver` (serve), `metactl` (administration) and
`metafs` (mount).

Imported before any of them imports grpc: gRPC core writes log lines of its own to
stderr (a failed bind, fork handlers) in its own format, where the commands report
each failure as one line themselves. A GRPC_VERBOSITY the user set is kept.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
