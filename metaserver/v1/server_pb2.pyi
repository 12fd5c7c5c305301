from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ("version", "engine", "uptime_seconds", "started_at_unix", "listen", "tls", "mutual_tls", "tokens", "client_ops_per_s", "client_max_concurrent", "max_concurrent_calls", "workers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    MUTUAL_TLS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_OPS_PER_S_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    engine: str
    uptime_seconds: float
    started_at_unix: float
    listen: str
    tls: bool
    mutual_tls: bool
    tokens: bool
    client_ops_per_s: float
    client_max_concurrent: int
    max_concurrent_calls: int
    workers: int
    def __init__(self, version: _Optional[str] = ..., engine: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., started_at_unix: _Optional[float] = ..., listen: _Optional[str] = ..., tls: _Optional[bool] = ..., mutual_tls: _Optional[bool] = ..., tokens: _Optional[bool] = ..., client_ops_per_s: _Optional[float] = ..., client_max_concurrent: _Optional[int] = ..., max_concurrent_calls: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...

class SessionsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "expires_unix_ns", "inodes")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    INODES_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    expires_unix_ns: int
    inodes: int
    def __init__(self, id: _Optional[bytes] = ..., expires_unix_ns: _Optional[int] = ..., inodes: _Optional[int] = ...) -> None: ...

class SessionsReply(_message.Message):
    __slots__ = ("count", "sessions")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    count: int
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, count: _Optional[int] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class LinkParentsRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class LinkParent(_message.Message):
    __slots__ = ("parent", "links")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    parent: int
    links: int
    def __init__(self, parent: _Optional[int] = ..., links: _Optional[int] = ...) -> None: ...

class LinkParentsReply(_message.Message):
    __slots__ = ("parents",)
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    parents: _containers.RepeatedCompositeFieldContainer[LinkParent]
    def __init__(self, parents: _Optional[_Iterable[_Union[LinkParent, _Mapping]]] = ...) -> None: ...
