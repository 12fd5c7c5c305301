"""Command-line entry points: `metaserver` (serve) and `metactl` (administration)."""
