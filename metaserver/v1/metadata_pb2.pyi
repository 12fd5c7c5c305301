from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_TYPE_UNSPECIFIED: _ClassVar[FileType]
    REGULAR: _ClassVar[FileType]
    DIRECTORY: _ClassVar[FileType]
    SYMLINK: _ClassVar[FileType]
    FIFO: _ClassVar[FileType]
    SOCKET: _ClassVar[FileType]
    CHAR_DEVICE: _ClassVar[FileType]
    BLOCK_DEVICE: _ClassVar[FileType]
FILE_TYPE_UNSPECIFIED: FileType
REGULAR: FileType
DIRECTORY: FileType
SYMLINK: FileType
FIFO: FileType
SOCKET: FileType
CHAR_DEVICE: FileType
BLOCK_DEVICE: FileType

class Attr(_message.Message):
    __slots__ = ("ino", "type", "mode", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns", "nlink", "size", "rdev", "parent")
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    ino: int
    type: FileType
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int
    size: int
    rdev: int
    parent: int
    def __init__(self, ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., atime_ns: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., ctime_ns: _Optional[int] = ..., nlink: _Optional[int] = ..., size: _Optional[int] = ..., rdev: _Optional[int] = ..., parent: _Optional[int] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("name", "ino", "type", "attr")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    ino: int
    type: FileType
    attr: Attr
    def __init__(self, name: _Optional[bytes] = ..., ino: _Optional[int] = ..., type: _Optional[_Union[FileType, str]] = ..., attr: _Optional[_Union[Attr, _Mapping]] = ...) -> None: ...

class Slice(_message.Message):
    __slots__ = ("pos", "id", "size", "off", "len")
    POS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFF_FIELD_NUMBER: _ClassVar[int]
    LEN_FIELD_NUMBER: _ClassVar[int]
    pos: int
    id: int
    size: int
    off: int
    len: int
    def __init__(self, pos: _Optional[int] = ..., id: _Optional[int] = ..., size: _Optional[int] = ..., off: _Optional[int] = ..., len: _Optional[int] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("parent", "name")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    parent: int
    name: bytes
    def __init__(self, parent: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class GetAttrRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class SetAttrRequest(_message.Message):
    __slots__ = ("request_id", "ino", "mask", "mode", "uid", "gid", "size", "atime_ns", "mtime_ns", "ctime_ns")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    mask: int
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., mask: _Optional[int] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., size: _Optional[int] = ..., atime_ns: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., ctime_ns: _Optional[int] = ...) -> None: ...

class MknodRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name", "type", "mode", "uid", "gid", "rdev")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    type: FileType
    mode: int
    uid: int
    gid: int
    rdev: int
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ..., type: _Optional[_Union[FileType, str]] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., rdev: _Optional[int] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name", "mode", "uid", "gid")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    mode: int
    uid: int
    gid: int
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class MkdirRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name", "mode", "uid", "gid")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    mode: int
    uid: int
    gid: int
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class SymlinkRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name", "target", "uid", "gid")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    target: bytes
    uid: int
    gid: int
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ..., target: _Optional[bytes] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class ReadLinkRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class ReadLinkReply(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: bytes
    def __init__(self, target: _Optional[bytes] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("request_id", "ino", "parent", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    parent: int
    name: bytes
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class UnlinkRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class RmdirRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class RenameRequest(_message.Message):
    __slots__ = ("request_id", "parent", "name", "new_parent", "new_name", "flags")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_PARENT_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    parent: int
    name: bytes
    new_parent: int
    new_name: bytes
    flags: int
    def __init__(self, request_id: _Optional[bytes] = ..., parent: _Optional[int] = ..., name: _Optional[bytes] = ..., new_parent: _Optional[int] = ..., new_name: _Optional[bytes] = ..., flags: _Optional[int] = ...) -> None: ...

class ReadDirRequest(_message.Message):
    __slots__ = ("ino", "cursor", "limit", "with_attrs")
    INO_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRS_FIELD_NUMBER: _ClassVar[int]
    ino: int
    cursor: bytes
    limit: int
    with_attrs: bool
    def __init__(self, ino: _Optional[int] = ..., cursor: _Optional[bytes] = ..., limit: _Optional[int] = ..., with_attrs: _Optional[bool] = ...) -> None: ...

class ReadDirReply(_message.Message):
    __slots__ = ("entries", "cursor")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    cursor: bytes
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., cursor: _Optional[bytes] = ...) -> None: ...

class GetXattrRequest(_message.Message):
    __slots__ = ("ino", "name")
    INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ino: int
    name: bytes
    def __init__(self, ino: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class XattrValue(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    def __init__(self, value: _Optional[bytes] = ...) -> None: ...

class SetXattrRequest(_message.Message):
    __slots__ = ("request_id", "ino", "name", "value", "flags")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    name: bytes
    value: bytes
    flags: int
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., name: _Optional[bytes] = ..., value: _Optional[bytes] = ..., flags: _Optional[int] = ...) -> None: ...

class ListXattrRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class XattrNames(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, names: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RemoveXattrRequest(_message.Message):
    __slots__ = ("request_id", "ino", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    name: bytes
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., name: _Optional[bytes] = ...) -> None: ...

class StatFsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatFsReply(_message.Message):
    __slots__ = ("total_bytes", "used_bytes", "avail_bytes", "total_inodes", "used_inodes", "avail_inodes")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_INODES_FIELD_NUMBER: _ClassVar[int]
    USED_INODES_FIELD_NUMBER: _ClassVar[int]
    AVAIL_INODES_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    used_bytes: int
    avail_bytes: int
    total_inodes: int
    used_inodes: int
    avail_inodes: int
    def __init__(self, total_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., avail_bytes: _Optional[int] = ..., total_inodes: _Optional[int] = ..., used_inodes: _Optional[int] = ..., avail_inodes: _Optional[int] = ...) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    def __init__(self, path: _Optional[bytes] = ...) -> None: ...

class AllocSliceIdsRequest(_message.Message):
    __slots__ = ("request_id", "count")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    count: int
    def __init__(self, request_id: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class AllocSliceIdsReply(_message.Message):
    __slots__ = ("first", "count")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    first: int
    count: int
    def __init__(self, first: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class WriteSliceRequest(_message.Message):
    __slots__ = ("request_id", "ino", "index", "slice")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SLICE_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    index: int
    slice: Slice
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., index: _Optional[int] = ..., slice: _Optional[_Union[Slice, _Mapping]] = ...) -> None: ...

class ReadChunkRequest(_message.Message):
    __slots__ = ("ino", "index")
    INO_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ino: int
    index: int
    def __init__(self, ino: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class ChunkReply(_message.Message):
    __slots__ = ("slices",)
    SLICES_FIELD_NUMBER: _ClassVar[int]
    slices: _containers.RepeatedCompositeFieldContainer[Slice]
    def __init__(self, slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ...) -> None: ...

class CompactChunkRequest(_message.Message):
    __slots__ = ("request_id", "ino", "index")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    index: int
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class CompactChunkReply(_message.Message):
    __slots__ = ("slices", "released")
    SLICES_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    slices: _containers.RepeatedCompositeFieldContainer[Slice]
    released: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., released: _Optional[_Iterable[int]] = ...) -> None: ...

class RenewSessionRequest(_message.Message):
    __slots__ = ("request_id", "session", "ttl_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    session: bytes
    ttl_ms: int
    def __init__(self, request_id: _Optional[bytes] = ..., session: _Optional[bytes] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("request_id", "session")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    session: bytes
    def __init__(self, request_id: _Optional[bytes] = ..., session: _Optional[bytes] = ...) -> None: ...

class HoldInodeRequest(_message.Message):
    __slots__ = ("request_id", "session", "ino")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    session: bytes
    ino: int
    def __init__(self, request_id: _Optional[bytes] = ..., session: _Optional[bytes] = ..., ino: _Optional[int] = ...) -> None: ...

class ReleaseInodeRequest(_message.Message):
    __slots__ = ("request_id", "session", "ino")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    session: bytes
    ino: int
    def __init__(self, request_id: _Optional[bytes] = ..., session: _Optional[bytes] = ..., ino: _Optional[int] = ...) -> None: ...

class SetLockRequest(_message.Message):
    __slots__ = ("request_id", "session", "ino", "owner", "flock", "type", "start", "end", "pid")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    FLOCK_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    session: bytes
    ino: int
    owner: int
    flock: bool
    type: int
    start: int
    end: int
    pid: int
    def __init__(self, request_id: _Optional[bytes] = ..., session: _Optional[bytes] = ..., ino: _Optional[int] = ..., owner: _Optional[int] = ..., flock: _Optional[bool] = ..., type: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...

class GetLockRequest(_message.Message):
    __slots__ = ("session", "ino", "owner", "flock", "type", "start", "end")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    FLOCK_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    session: bytes
    ino: int
    owner: int
    flock: bool
    type: int
    start: int
    end: int
    def __init__(self, session: _Optional[bytes] = ..., ino: _Optional[int] = ..., owner: _Optional[int] = ..., flock: _Optional[bool] = ..., type: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class LockReply(_message.Message):
    __slots__ = ("type", "start", "end", "pid")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    type: int
    start: int
    end: int
    pid: int
    def __init__(self, type: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...

class SummaryRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class TreeSummary(_message.Message):
    __slots__ = ("dirs", "files", "size")
    DIRS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    dirs: int
    files: int
    size: int
    def __init__(self, dirs: _Optional[int] = ..., files: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("request_id", "ino", "max_bytes", "max_inodes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_INODES_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    max_bytes: int
    max_inodes: int
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., max_bytes: _Optional[int] = ..., max_inodes: _Optional[int] = ...) -> None: ...

class GetQuotaRequest(_message.Message):
    __slots__ = ("ino",)
    INO_FIELD_NUMBER: _ClassVar[int]
    ino: int
    def __init__(self, ino: _Optional[int] = ...) -> None: ...

class DeleteQuotaRequest(_message.Message):
    __slots__ = ("request_id", "ino")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ...) -> None: ...

class ListQuotasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Quota(_message.Message):
    __slots__ = ("ino", "max_bytes", "max_inodes", "used_bytes", "used_inodes")
    INO_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_INODES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_INODES_FIELD_NUMBER: _ClassVar[int]
    ino: int
    max_bytes: int
    max_inodes: int
    used_bytes: int
    used_inodes: int
    def __init__(self, ino: _Optional[int] = ..., max_bytes: _Optional[int] = ..., max_inodes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., used_inodes: _Optional[int] = ...) -> None: ...

class QuotaList(_message.Message):
    __slots__ = ("quotas",)
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    quotas: _containers.RepeatedCompositeFieldContainer[Quota]
    def __init__(self, quotas: _Optional[_Iterable[_Union[Quota, _Mapping]]] = ...) -> None: ...

class CheckTreeRequest(_message.Message):
    __slots__ = ("request_id", "ino", "repair")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    ino: int
    repair: bool
    def __init__(self, request_id: _Optional[bytes] = ..., ino: _Optional[int] = ..., repair: _Optional[bool] = ...) -> None: ...

class TreeCheck(_message.Message):
    __slots__ = ("ino", "kept", "walked", "repaired", "wrong")
    INO_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    WALKED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    WRONG_FIELD_NUMBER: _ClassVar[int]
    ino: int
    kept: TreeSummary
    walked: TreeSummary
    repaired: bool
    wrong: int
    def __init__(self, ino: _Optional[int] = ..., kept: _Optional[_Union[TreeSummary, _Mapping]] = ..., walked: _Optional[_Union[TreeSummary, _Mapping]] = ..., repaired: _Optional[bool] = ..., wrong: _Optional[int] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("lookup", "getattr", "setattr", "mknod", "create", "mkdir", "symlink", "readlink", "link", "unlink", "rmdir", "rename", "readdir", "getxattr", "setxattr", "listxattr", "removexattr", "statfs", "resolve", "alloc_slice_ids", "write_slice", "read_chunk", "compact_chunk", "renew_session", "close_session", "hold_inode", "release_inode", "set_lock", "get_lock", "summary", "set_quota", "get_quota", "delete_quota", "list_quotas", "check_tree")
    LOOKUP_FIELD_NUMBER: _ClassVar[int]
    GETATTR_FIELD_NUMBER: _ClassVar[int]
    SETATTR_FIELD_NUMBER: _ClassVar[int]
    MKNOD_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    MKDIR_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_FIELD_NUMBER: _ClassVar[int]
    READLINK_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    UNLINK_FIELD_NUMBER: _ClassVar[int]
    RMDIR_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    READDIR_FIELD_NUMBER: _ClassVar[int]
    GETXATTR_FIELD_NUMBER: _ClassVar[int]
    SETXATTR_FIELD_NUMBER: _ClassVar[int]
    LISTXATTR_FIELD_NUMBER: _ClassVar[int]
    REMOVEXATTR_FIELD_NUMBER: _ClassVar[int]
    STATFS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    ALLOC_SLICE_IDS_FIELD_NUMBER: _ClassVar[int]
    WRITE_SLICE_FIELD_NUMBER: _ClassVar[int]
    READ_CHUNK_FIELD_NUMBER: _ClassVar[int]
    COMPACT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    RENEW_SESSION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_SESSION_FIELD_NUMBER: _ClassVar[int]
    HOLD_INODE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_INODE_FIELD_NUMBER: _ClassVar[int]
    SET_LOCK_FIELD_NUMBER: _ClassVar[int]
    GET_LOCK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SET_QUOTA_FIELD_NUMBER: _ClassVar[int]
    GET_QUOTA_FIELD_NUMBER: _ClassVar[int]
    DELETE_QUOTA_FIELD_NUMBER: _ClassVar[int]
    LIST_QUOTAS_FIELD_NUMBER: _ClassVar[int]
    CHECK_TREE_FIELD_NUMBER: _ClassVar[int]
    lookup: LookupRequest
    getattr: GetAttrRequest
    setattr: SetAttrRequest
    mknod: MknodRequest
    create: CreateRequest
    mkdir: MkdirRequest
    symlink: SymlinkRequest
    readlink: ReadLinkRequest
    link: LinkRequest
    unlink: UnlinkRequest
    rmdir: RmdirRequest
    rename: RenameRequest
    readdir: ReadDirRequest
    getxattr: GetXattrRequest
    setxattr: SetXattrRequest
    listxattr: ListXattrRequest
    removexattr: RemoveXattrRequest
    statfs: StatFsRequest
    resolve: ResolveRequest
    alloc_slice_ids: AllocSliceIdsRequest
    write_slice: WriteSliceRequest
    read_chunk: ReadChunkRequest
    compact_chunk: CompactChunkRequest
    renew_session: RenewSessionRequest
    close_session: CloseSessionRequest
    hold_inode: HoldInodeRequest
    release_inode: ReleaseInodeRequest
    set_lock: SetLockRequest
    get_lock: GetLockRequest
    summary: SummaryRequest
    set_quota: SetQuotaRequest
    get_quota: GetQuotaRequest
    delete_quota: DeleteQuotaRequest
    list_quotas: ListQuotasRequest
    check_tree: CheckTreeRequest
    def __init__(self, lookup: _Optional[_Union[LookupRequest, _Mapping]] = ..., getattr: _Optional[_Union[GetAttrRequest, _Mapping]] = ..., setattr: _Optional[_Union[SetAttrRequest, _Mapping]] = ..., mknod: _Optional[_Union[MknodRequest, _Mapping]] = ..., create: _Optional[_Union[CreateRequest, _Mapping]] = ..., mkdir: _Optional[_Union[MkdirRequest, _Mapping]] = ..., symlink: _Optional[_Union[SymlinkRequest, _Mapping]] = ..., readlink: _Optional[_Union[ReadLinkRequest, _Mapping]] = ..., link: _Optional[_Union[LinkRequest, _Mapping]] = ..., unlink: _Optional[_Union[UnlinkRequest, _Mapping]] = ..., rmdir: _Optional[_Union[RmdirRequest, _Mapping]] = ..., rename: _Optional[_Union[RenameRequest, _Mapping]] = ..., readdir: _Optional[_Union[ReadDirRequest, _Mapping]] = ..., getxattr: _Optional[_Union[GetXattrRequest, _Mapping]] = ..., setxattr: _Optional[_Union[SetXattrRequest, _Mapping]] = ..., listxattr: _Optional[_Union[ListXattrRequest, _Mapping]] = ..., removexattr: _Optional[_Union[RemoveXattrRequest, _Mapping]] = ..., statfs: _Optional[_Union[StatFsRequest, _Mapping]] = ..., resolve: _Optional[_Union[ResolveRequest, _Mapping]] = ..., alloc_slice_ids: _Optional[_Union[AllocSliceIdsRequest, _Mapping]] = ..., write_slice: _Optional[_Union[WriteSliceRequest, _Mapping]] = ..., read_chunk: _Optional[_Union[ReadChunkRequest, _Mapping]] = ..., compact_chunk: _Optional[_Union[CompactChunkRequest, _Mapping]] = ..., renew_session: _Optional[_Union[RenewSessionRequest, _Mapping]] = ..., close_session: _Optional[_Union[CloseSessionRequest, _Mapping]] = ..., hold_inode: _Optional[_Union[HoldInodeRequest, _Mapping]] = ..., release_inode: _Optional[_Union[ReleaseInodeRequest, _Mapping]] = ..., set_lock: _Optional[_Union[SetLockRequest, _Mapping]] = ..., get_lock: _Optional[_Union[GetLockRequest, _Mapping]] = ..., summary: _Optional[_Union[SummaryRequest, _Mapping]] = ..., set_quota: _Optional[_Union[SetQuotaRequest, _Mapping]] = ..., get_quota: _Optional[_Union[GetQuotaRequest, _Mapping]] = ..., delete_quota: _Optional[_Union[DeleteQuotaRequest, _Mapping]] = ..., list_quotas: _Optional[_Union[ListQuotasRequest, _Mapping]] = ..., check_tree: _Optional[_Union[CheckTreeRequest, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("errno", "message")
    ERRNO_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    errno: int
    message: str
    def __init__(self, errno: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class OperationResult(_message.Message):
    __slots__ = ("error", "entry", "attr", "empty", "readlink", "readdir", "xattr_value", "xattr_names", "statfs", "slice_ids", "chunk", "compacted", "lock", "summary", "quota", "quotas", "tree_check")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    READLINK_FIELD_NUMBER: _ClassVar[int]
    READDIR_FIELD_NUMBER: _ClassVar[int]
    XATTR_VALUE_FIELD_NUMBER: _ClassVar[int]
    XATTR_NAMES_FIELD_NUMBER: _ClassVar[int]
    STATFS_FIELD_NUMBER: _ClassVar[int]
    SLICE_IDS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    TREE_CHECK_FIELD_NUMBER: _ClassVar[int]
    error: Error
    entry: Entry
    attr: Attr
    empty: Empty
    readlink: ReadLinkReply
    readdir: ReadDirReply
    xattr_value: XattrValue
    xattr_names: XattrNames
    statfs: StatFsReply
    slice_ids: AllocSliceIdsReply
    chunk: ChunkReply
    compacted: CompactChunkReply
    lock: LockReply
    summary: TreeSummary
    quota: Quota
    quotas: QuotaList
    tree_check: TreeCheck
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., entry: _Optional[_Union[Entry, _Mapping]] = ..., attr: _Optional[_Union[Attr, _Mapping]] = ..., empty: _Optional[_Union[Empty, _Mapping]] = ..., readlink: _Optional[_Union[ReadLinkReply, _Mapping]] = ..., readdir: _Optional[_Union[ReadDirReply, _Mapping]] = ..., xattr_value: _Optional[_Union[XattrValue, _Mapping]] = ..., xattr_names: _Optional[_Union[XattrNames, _Mapping]] = ..., statfs: _Optional[_Union[StatFsReply, _Mapping]] = ..., slice_ids: _Optional[_Union[AllocSliceIdsReply, _Mapping]] = ..., chunk: _Optional[_Union[ChunkReply, _Mapping]] = ..., compacted: _Optional[_Union[CompactChunkReply, _Mapping]] = ..., lock: _Optional[_Union[LockReply, _Mapping]] = ..., summary: _Optional[_Union[TreeSummary, _Mapping]] = ..., quota: _Optional[_Union[Quota, _Mapping]] = ..., quotas: _Optional[_Union[QuotaList, _Mapping]] = ..., tree_check: _Optional[_Union[TreeCheck, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("ops", "atomic", "request_id")
    OPS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[Operation]
    atomic: bool
    request_id: bytes
    def __init__(self, ops: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., atomic: _Optional[bool] = ..., request_id: _Optional[bytes] = ...) -> None: ...

class BatchReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[OperationResult]
    def __init__(self, results: _Optional[_Iterable[_Union[OperationResult, _Mapping]]] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...
