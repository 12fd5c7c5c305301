"""Fault injection for replication tests and the two-datacenter example."""
