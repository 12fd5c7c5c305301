"""Server configuration: one dataclass, loadable from TOML, overridable by flags.

Precedence: flags, then the config file, then the environment (META_URL_ENV, which
metactl reads too), then the defaults."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from typing import Any

from engines import BadEngineUrl, check_engine_url, redact_url

DEFAULT_DATA_DIR = "./metaserver-data"
# The engine URL when neither a flag nor the config file gives one (metactl reads it too).
META_URL_ENV = "METASERVER_META_URL"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says why, in one line."""


@dataclass
class ServerConfig:
    meta_url: str = ""                   # engine URL; empty: rocksdb://<data_dir>
    data_dir: str = DEFAULT_DATA_DIR     # only used to derive meta_url
    listen: str = "127.0.0.1:7420"       # host:port; port 0 picks a free one
    workers: int = 16                    # gRPC handler threads
    total_bytes: int = 1 << 50           # capacity statfs reports
    total_inodes: int = 1 << 40
    request_ttl_s: float = 3600          # how long idempotency records are kept
    changelog_keep: int = 1_000_000      # change records kept by trimming
    maintenance_interval_s: float = 5
    dir_mtime_skip_ms: float = 100       # see OpContext.dir_mtime_skip_ns
    metrics_listen: str = ""             # HOST:PORT for Prometheus /metrics; empty: off
    health_listen: str = ""              # HOST:PORT serving only gRPC health, in plaintext
                                         # (probes that cannot speak TLS); empty: off
    max_message_mb: int = 64             # largest gRPC request or reply
    log_level: str = "info"              # debug, info, warning or error
    log_format: str = "text"             # text, or json: one object per line
    access_log_sample: float = 0         # fraction of calls in the access log; 0 off, 1 all
    follow: str = ""                     # HOST:PORT of a primary to follow; empty: primary
    rejoin: bool = False                 # follow even if records after the fork point must
                                         # go (kept in a rollback file first)
    rollback_dir: str = ""               # where rollback files go; empty: <data_dir>-rollback
    # Security (docs/operations.md). TLS: the server's certificate chain and key (PEM);
    # with tls_client_ca, clients must present a certificate that CA signed (mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    token_store: str = ""                # file of hashed bearer tokens; set: every call needs one
    allow_insecure_network: bool = False  # serve a non-loopback address without TLS+tokens
    # What a follower presents to its primary: a token (file) and TLS settings.
    follow_token_file: str = ""          # empty: $METASERVER_TOKEN, if set
    follow_tls_ca: str = ""              # set: TLS to the primary, verified with this CA
    follow_tls_cert: str = ""            # with follow_tls_key: client certificate (mTLS)
    follow_tls_key: str = ""
    # Fairness: per client (token, or connection on an open server); 0 is no limit.
    client_ops_per_s: float = 0
    client_max_concurrent: int = 0
    max_concurrent_calls: int = 0        # all clients together

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = _TYPES[f.type]
            if (isinstance(value, bool) and f.type != "bool") or not isinstance(value, expected):
                raise ConfigError(f"{f.name} must be {f.type}, not {value!r}")
        self.data_dir = os.path.abspath(self.data_dir)
        if not self.meta_url:
            self.meta_url = f"rocksdb://{self.data_dir}"
        try:
            check_engine_url(self.meta_url)
        except BadEngineUrl as exc:
            raise ConfigError(f"meta_url {redact_url(self.meta_url)}: {exc}") from None
        if not _is_host_port(self.listen):
            raise ConfigError(f"listen must be HOST:PORT, not {self.listen!r}")
        if self.follow and not _is_host_port(self.follow):
            raise ConfigError(f"follow must be HOST:PORT, not {self.follow!r}")
        for name in ("metrics_listen", "health_listen"):
            if getattr(self, name) and not _is_host_port(getattr(self, name)):
                raise ConfigError(f"{name} must be HOST:PORT, not {getattr(self, name)!r}")
        for name in ("workers", "maintenance_interval_s", "request_ttl_s", "max_message_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        for name in ("total_bytes", "total_inodes", "changelog_keep", "dir_mtime_skip_ms",
                     "client_ops_per_s", "client_max_concurrent", "max_concurrent_calls"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if not 0 <= self.access_log_sample <= 1:
            raise ConfigError("access_log_sample must be between 0 and 1")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, "
                              f"not {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}, "
                              f"not {self.log_format!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if bool(self.follow_tls_cert) != bool(self.follow_tls_key):
            raise ConfigError("follow_tls_cert and follow_tls_key go together")
        if not _is_loopback(self.listen) and not (self.tls_cert and self.token_store) \
                and not self.allow_insecure_network:
            raise ConfigError(f"listen {self.listen} is reachable from other machines: serve "
                              "it with TLS and tokens (tls_cert, tls_key, token_store), or "
                              "set allow_insecure_network (--allow-insecure-network) to "
                              "expose the namespace without them")


def _is_host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and int(port) <= 65535


def _is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:          # a host name other than localhost: it may resolve anywhere
        return False


# Field annotations are strings (postponed evaluation); these are what they accept.
_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "float": (int, float),
                                              "bool": bool}


def load_config(path: str | None = None, **overrides: Any) -> ServerConfig:
    """The configuration from TOML file `path` (keys are field names), with the
    overrides that are not None on top. A data_dir override without a meta_url override
    also replaces the file's meta_url: the data directory given last wins. When neither
    gives an engine, META_URL_ENV does (if set and not empty)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    given = {k: v for k, v in overrides.items() if v is not None}
    if "meta_url" in given and "data_dir" in given:
        raise ConfigError("give a meta URL or a data directory, not both")
    if "data_dir" in given:
        values.pop("meta_url", None)
    values.update(given)
    # Empty counts as unset, as for metactl's options (click ignores an empty variable).
    if "meta_url" not in values and "data_dir" not in values and os.environ.get(META_URL_ENV):
        values["meta_url"] = os.environ[META_URL_ENV]
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    return ServerConfig(**values)
