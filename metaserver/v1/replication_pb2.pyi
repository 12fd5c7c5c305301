from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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
    __slots__ = ("epoch", "primary_seq", "records", "primary_time_ns", "superseded_by")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    primary_seq: int
    records: _containers.RepeatedScalarFieldContainer[bytes]
    primary_time_ns: int
    superseded_by: int
    def __init__(self, epoch: _Optional[int] = ..., primary_seq: _Optional[int] = ..., records: _Optional[_Iterable[bytes]] = ..., primary_time_ns: _Optional[int] = ..., superseded_by: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("seq", "epoch", "keys", "values", "lineage")
    class LineageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    epoch: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    lineage: _containers.ScalarMap[int, int]
    def __init__(self, seq: _Optional[int] = ..., epoch: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[_Iterable[bytes]] = ..., lineage: _Optional[_Mapping[int, int]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("role", "epoch", "last_seq", "primary", "connected", "applied_seq", "primary_seq", "lag_records", "lag_seconds", "apply_rate", "bytes_received", "ready", "superseded_by", "last_contact_seconds", "lineage", "namespace_id", "rollback_file", "rollback_records")
    class LineageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
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
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FILE_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_RECORDS_FIELD_NUMBER: _ClassVar[int]
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
    superseded_by: int
    last_contact_seconds: float
    lineage: _containers.ScalarMap[int, int]
    namespace_id: int
    rollback_file: str
    rollback_records: int
    def __init__(self, role: _Optional[str] = ..., epoch: _Optional[int] = ..., last_seq: _Optional[int] = ..., primary: _Optional[str] = ..., connected: _Optional[bool] = ..., applied_seq: _Optional[int] = ..., primary_seq: _Optional[int] = ..., lag_records: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., apply_rate: _Optional[float] = ..., bytes_received: _Optional[int] = ..., ready: _Optional[bool] = ..., superseded_by: _Optional[int] = ..., last_contact_seconds: _Optional[float] = ..., lineage: _Optional[_Mapping[int, int]] = ..., namespace_id: _Optional[int] = ..., rollback_file: _Optional[str] = ..., rollback_records: _Optional[int] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("force", "timeout_s")
    FORCE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    force: bool
    timeout_s: float
    def __init__(self, force: _Optional[bool] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class PromoteReply(_message.Message):
    __slots__ = ("epoch", "seq", "promoted_at_epoch", "promoted_at_seq", "old_primary_fenced", "old_primary_seq", "records_lost")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    OLD_PRIMARY_FENCED_FIELD_NUMBER: _ClassVar[int]
    OLD_PRIMARY_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_LOST_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    seq: int
    promoted_at_epoch: int
    promoted_at_seq: int
    old_primary_fenced: bool
    old_primary_seq: int
    records_lost: int
    def __init__(self, epoch: _Optional[int] = ..., seq: _Optional[int] = ..., promoted_at_epoch: _Optional[int] = ..., promoted_at_seq: _Optional[int] = ..., old_primary_fenced: _Optional[bool] = ..., old_primary_seq: _Optional[int] = ..., records_lost: _Optional[int] = ...) -> None: ...

class FenceRequest(_message.Message):
    __slots__ = ("epoch", "by")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    by: str
    def __init__(self, epoch: _Optional[int] = ..., by: _Optional[str] = ...) -> None: ...

class FenceReply(_message.Message):
    __slots__ = ("epoch", "superseded_by", "last_seq")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    superseded_by: int
    last_seq: int
    def __init__(self, epoch: _Optional[int] = ..., superseded_by: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...
