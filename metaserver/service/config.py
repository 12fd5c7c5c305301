"""Server configuration: one declared model, loadable from TOML, overridable by flags.

Precedence: flags, then the config file, then the environment (META_URL_ENV, which
metactl reads too), then the defaults. Each field declares what it accepts (pydantic,
strict: "4" is not 4, true is not 1); what involves several fields is checked after."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, \
    model_validator

from engines import BadEngineUrl, check_engine_url, redact_url

DEFAULT_DATA_DIR = "./metaserver-data"
# The engine URL when neither a flag nor the config file gives one (metactl reads it too).
META_URL_ENV = "METASERVER_META_URL"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says why, in one line."""


def _host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if value and not (host and port.isdigit() and int(port) <= 65535):
        raise ValueError("must be HOST:PORT")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]     # empty where optional means off
Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]


class ServerConfig(BaseModel):
    """Everything `metaserver serve` can be told; field names are the TOML keys."""

    model_config = ConfigDict(strict=True, extra="forbid")

    meta_url: str = ""                   # engine URL; empty: rocksdb://<data_dir>
    data_dir: str = DEFAULT_DATA_DIR     # only used to derive meta_url
    listen: Annotated[str, Field(min_length=1), AfterValidator(_host_port)] = "127.0.0.1:7420"
    workers: Positive = 16               # gRPC handler threads
    total_bytes: NonNegative = 1 << 50   # capacity statfs reports
    total_inodes: NonNegative = 1 << 40
    request_ttl_s: Annotated[float, Field(gt=0)] = 3600   # how long idempotency records are kept
    changelog_keep: NonNegative = 1_000_000               # change records kept by trimming
    maintenance_interval_s: Annotated[float, Field(gt=0)] = 5
    dir_mtime_skip_ms: Annotated[float, Field(ge=0)] = 100  # see OpContext.dir_mtime_skip_ns
    metrics_listen: HostPort = ""        # HOST:PORT for Prometheus /metrics; empty: off
    health_listen: HostPort = ""         # HOST:PORT serving only gRPC health, in plaintext
                                         # (probes that cannot speak TLS); empty: off
    max_message_mb: Positive = 64        # largest gRPC request or reply
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"   # json: one object per line
    access_log_sample: Annotated[float, Field(ge=0, le=1)] = 0  # fraction of calls logged
    follow: HostPort = ""                # HOST:PORT of a primary to follow; empty: primary
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
    client_ops_per_s: Annotated[float, Field(ge=0)] = 0
    client_max_concurrent: NonNegative = 0
    max_concurrent_calls: NonNegative = 0   # all clients together

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from None

    @model_validator(mode="after")
    def _together(self) -> ServerConfig:
        """The rules that involve several fields, and the derived engine URL."""
        self.data_dir = os.path.abspath(self.data_dir)
        if not self.meta_url:
            self.meta_url = f"rocksdb://{self.data_dir}"
        try:
            check_engine_url(self.meta_url)
        except BadEngineUrl as exc:
            raise ValueError(f"meta_url {redact_url(self.meta_url)}: {exc}") from None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if bool(self.follow_tls_cert) != bool(self.follow_tls_key):
            raise ValueError("follow_tls_cert and follow_tls_key go together")
        if not _is_loopback(self.listen) and not (self.tls_cert and self.token_store) \
                and not self.allow_insecure_network:
            raise ValueError(f"listen {self.listen} is reachable from other machines: serve "
                             "it with TLS and tokens (tls_cert, tls_key, token_store), or "
                             "set allow_insecure_network (--allow-insecure-network) to "
                             "expose the namespace without them")
        return self


def _one_line(exc: ValidationError) -> str:
    """The first problem pydantic found, as `field: what is wrong (got value)`; a
    cross-field rule's message stands alone."""
    error = exc.errors(include_url=False)[0]
    if error["type"] == "extra_forbidden":     # load_config names unknown keys first
        return f"unknown configuration key: {error['loc'][0]}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    return f"{error['loc'][0]}: {message[0].lower()}{message[1:]}, not {error['input']!r}"


def _is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:          # a host name other than localhost: it may resolve anywhere
        return False


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
    known = set(ServerConfig.model_fields)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    return ServerConfig(**values)
