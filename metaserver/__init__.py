"""metaserver: a transactional metadata engine for distributed file systems."""

__version__ = "0.1.0"
