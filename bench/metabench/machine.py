"""Machine facts recorded with every result: what ran where, and how busy the box was."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata

import psutil


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def facts() -> dict:
    memory = psutil.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": memory.total,
        "memory_available_bytes": memory.available,
        "load_average": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in
                     ("metaserver", "grpcio", "protobuf", "rocksdict", "numpy")},
    }
