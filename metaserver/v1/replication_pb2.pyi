from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StreamRequest(_message.Message):
    __slots__ = ("from_seq", "epoch")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    epoch: int
    def __init__(self, from_seq: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class ChangeBatch(_message.Message):
    __slots__ = ("epoch", "primary_seq", "records")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    primary_seq: int
    records: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, epoch: _Optional[int] = ..., primary_seq: _Optional[int] = ..., records: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("seq", "epoch", "keys", "values")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    epoch: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, seq: _Optional[int] = ..., epoch: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("role", "epoch", "last_seq", "primary", "connected", "applied_seq", "primary_seq", "lag_records", "lag_seconds", "apply_rate", "bytes_received", "ready")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPLY_RATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    role: str
    epoch: int
    last_seq: int
    primary: str
    connected: bool
    applied_seq: int
    primary_seq: int
    lag_records: int
    lag_seconds: float
    apply_rate: float
    bytes_received: int
    ready: bool
    def __init__(self, role: _Optional[str] = ..., epoch: _Optional[int] = ..., last_seq: _Optional[int] = ..., primary: _Optional[str] = ..., connected: _Optional[bool] = ..., applied_seq: _Optional[int] = ..., primary_seq: _Optional[int] = ..., lag_records: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., apply_rate: _Optional[float] = ..., bytes_received: _Optional[int] = ..., ready: _Optional[bool] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromoteReply(_message.Message):
    __slots__ = ("epoch", "seq")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    seq: int
    def __init__(self, epoch: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...
