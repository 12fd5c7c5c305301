"""Who may call what: roles, the token file, and the one server interceptor every call
passes (authenticate, authorize, then admit under metaserver.service.limits).

Roles: `read` (lookups, listings, Replication.Status), `write` (also every mutation),
`replication` (also Stream, Snapshot, Fence: what a follower calls), `admin`
(everything, e.g. Promote). The role an RPC needs is derived, never listed per RPC: a
Metadata RPC is `read` if it runs an operation that does not mutate (or is Echo),
`admin` if its operation is an administrator's (quotas), else `write`, and a Batch
needs what its operations need (the most any of them needs);
Replication RPCs need `replication` except Status (`read`) and Promote (`admin`);
ServerInfo (which only describes the server) needs `read`; any other service needs
`admin`, except health and reflection, which stay open. So an RPC added later is at
least `write` without anyone deciding it.

Tokens are `ID.SECRET` (SECRET: 32 random bytes); the file keeps only SHA-256 of the
secret (a 256-bit random secret needs no slow hash), as JSON, mode 0600, replaced
atomically. The server re-reads it when it changes, without a restart: a revocation
takes effect within a second, a new token at once.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter

from metaserver.ops import OPS
from metaserver.service.codec import OPERATIONS, SERVICE
from metaserver.service.errors import ERRNO_KEY
from metaserver.service.info import SERVICE as INFO_SERVICE
from metaserver.service.limits import Limits, Overloaded
from metaserver.v1 import replication_pb2

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
RELOAD_EVERY_S = 1.0
REFUSED = Counter("metaserver_refused_calls_total", "Calls refused before running, by reason",
                  ["reason"])


class Role(enum.Enum):
    READ = "read"
    WRITE = "write"
    REPLICATION = "replication"
    ADMIN = "admin"


# What holding each role allows (a role also grants the ones it includes).
_GRANTS: dict[Role, frozenset[Role]] = {
    Role.READ: frozenset({Role.READ}),
    Role.WRITE: frozenset({Role.READ, Role.WRITE}),
    Role.REPLICATION: frozenset({Role.READ, Role.REPLICATION}),
    Role.ADMIN: frozenset(Role),
}

OPEN_SERVICES = frozenset({health.SERVICE_NAME, reflection.SERVICE_NAME})
_READ_ONLY_METADATA = frozenset({spec.rpc for spec in OPERATIONS.values()
                                 if not OPS[spec.op].mutating} | {"Echo"})
_ADMIN_METADATA = frozenset(spec.rpc for spec in OPERATIONS.values() if OPS[spec.op].admin)
_BATCH = f"/{SERVICE.full_name}/Batch"
_REPLICATION = replication_pb2.DESCRIPTOR.services_by_name["Replication"].full_name
_REPLICATION_EXCEPTIONS = {"Status": Role.READ, "Promote": Role.ADMIN}


def required_role(method: str) -> Role | None:
    """The role `/package.Service/Method` needs; None for the open services."""
    service, _, name = method.lstrip("/").rpartition("/")
    if service in OPEN_SERVICES:
        return None
    if service == SERVICE.full_name:
        # Batch: the least it can need; the interceptor looks at its operations.
        if name in _ADMIN_METADATA:
            return Role.ADMIN
        return Role.READ if name in _READ_ONLY_METADATA or method == _BATCH else Role.WRITE
    if service == _REPLICATION:
        return _REPLICATION_EXCEPTIONS.get(name, Role.REPLICATION)
    if service == INFO_SERVICE.full_name:
        return Role.READ
    return Role.ADMIN


# --- the token file ------------------------------------------------------------------------

class TokenFileError(Exception):
    """The token store cannot be read or written; the message says why, in one line."""


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    roles: tuple[str, ...]
    sha256: str
    created: str

    def grants(self, role: Role) -> bool:
        return any(role in _GRANTS[Role(held)] for held in self.roles)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def read_tokens(path: str) -> dict[str, TokenRecord]:
    """The records of the token file by id; a missing file holds none."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        records = {r["id"]: TokenRecord(r["id"], r["name"], tuple(r["roles"]), r["sha256"],
                                        r["created"]) for r in data["tokens"]}
        for record in records.values():
            for role in record.roles:
                Role(role)          # ValueError: not a role
        return records
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise TokenFileError(f"cannot read token store {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(f"token store {path} is damaged: {exc}") from None


def _write_tokens(path: str, records: dict[str, TokenRecord]) -> None:
    text = json.dumps({"tokens": [dataclasses.asdict(r) for r in records.values()]}, indent=1)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tokens-")   # created mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise TokenFileError(f"cannot write token store {path}: {exc.strerror}") from None


def create_token(path: str, roles: list[Role], name: str) -> tuple[TokenRecord, str]:
    """Add a token to the file; returns its record and the token text (shown once)."""
    token_id, secret = secrets.token_hex(8), \
        base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    records = read_tokens(path)
    record = TokenRecord(token_id, name, tuple(r.value for r in roles), _digest(secret),
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    records[token_id] = record
    _write_tokens(path, records)
    return record, f"{token_id}.{secret}"


def revoke_token(path: str, token_id: str) -> TokenRecord:
    records = read_tokens(path)
    if token_id not in records:
        raise TokenFileError(f"no token {token_id} in {path}")
    record = records.pop(token_id)
    _write_tokens(path, records)
    return record


class TokenStore:
    """The server's view of the token file, re-read when its modification time moves."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.exists(path):
            raise TokenFileError(f"token store {path} does not exist (make one with "
                                 "`metactl token create --store PATH`)")
        self._records = read_tokens(path)
        self._stamp = self._mtime()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _mtime(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return 0

    def _current(self, now_please: bool = False) -> dict[str, TokenRecord]:
        now = time.monotonic()
        if now_please or now - self._checked >= RELOAD_EVERY_S:
            with self._lock:
                self._checked = now
                stamp = self._mtime()
                if stamp != self._stamp:
                    try:
                        self._records, self._stamp = read_tokens(self.path), stamp
                    except TokenFileError as exc:   # keep serving with what we had
                        log.error("%s; still using the previous tokens", exc)
        return self._records

    def authenticate(self, token: str) -> TokenRecord | None:
        token_id, _, secret = token.partition(".")
        record = self._current().get(token_id)
        if record is None:          # perhaps made a moment ago: a stat costs microseconds
            record = self._current(now_please=True).get(token_id)
        if record is None or not hmac.compare_digest(record.sha256, _digest(secret)):
            return None
        return record


# --- the interceptor -----------------------------------------------------------------------

Behavior = Callable[[object, grpc.ServicerContext], object]


def batch_role(request) -> Role:
    """What a BatchRequest needs: admin if any of its operations is an administrator's,
    write if any mutates (or is not known here), else read."""
    names = [op.WhichOneof("op") for op in getattr(request, "ops", ())]
    if any(name in OPS and OPS[name].admin for name in names):
        return Role.ADMIN
    return Role.WRITE if any(name not in OPS or OPS[name].mutating for name in names) \
        else Role.READ


def _refusal(code: grpc.StatusCode, number: int, message: str) -> Behavior:
    """A handler body that fails the call the way the servicer fails one (errno trailer)."""
    def refuse(request, context: grpc.ServicerContext):
        REFUSED.labels(code.name.lower()).inc()
        context.set_trailing_metadata(((ERRNO_KEY, str(number)),))
        context.abort(code, message)
    return refuse


def _admitted(behavior: Behavior, limits: Limits, client: str | None,
              streaming: bool) -> Behavior:
    """`behavior` run only inside a place `limits` admits it to (for a stream, until
    the stream ends). `client` None: the call's connection is the client."""
    def refused(context: grpc.ServicerContext, exc: Overloaded):
        REFUSED.labels("over_limit").inc()
        context.set_trailing_metadata(((ERRNO_KEY, str(errno.EAGAIN)),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    def unary(request, context: grpc.ServicerContext):
        try:
            with limits.admit(client or context.peer()):
                return behavior(request, context)
        except Overloaded as exc:
            refused(context, exc)

    def stream(request, context: grpc.ServicerContext) -> Iterator:
        try:
            with limits.admit(client or context.peer()):
                yield from behavior(request, context)
        except Overloaded as exc:
            refused(context, exc)
    return stream if streaming else unary


def _checking_batch(behavior: Behavior, record: TokenRecord) -> Behavior:
    """`behavior` once the batch's operations are seen to need no more than `record`
    grants (the request is decoded only here, after the interceptor)."""
    def checked(request, context: grpc.ServicerContext):
        role = batch_role(request)
        if not record.grants(role):
            _refusal(grpc.StatusCode.PERMISSION_DENIED, errno.EPERM,
                     f"token {record.id} ({record.name}: {','.join(record.roles)}) lacks "
                     f"the {role.value} role a Batch with mutations needs")(request, context)
        return behavior(request, context)
    return checked


def _with_behavior(handler: grpc.RpcMethodHandler,
                   wrap: Callable[[Behavior, bool], Behavior]) -> grpc.RpcMethodHandler:
    """`handler` (grpc's namedtuple) with its behavior wrapped; wrap(behavior, streaming)."""
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior is not None:
            return handler._replace(**{kind: wrap(behavior, handler.response_streaming)})
    return handler


class Gatekeeper(grpc.ServerInterceptor):
    """Every call passes here. With a token store, the bearer token must be known and
    grant the role the RPC needs (UNAUTHENTICATED + EACCES, PERMISSION_DENIED + EPERM);
    then, for Metadata calls, `limits` must admit it (RESOURCE_EXHAUSTED + EAGAIN)."""

    def __init__(self, tokens: TokenStore | None, limits: Limits) -> None:
        self.tokens = tokens
        self.limits = limits
        self._roles: dict[str, Role | None] = {}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return None
        if method not in self._roles:
            self._roles[method] = required_role(method)
        role = self._roles[method]
        if role is None:
            return handler
        client = None
        if self.tokens is not None:
            record, refusal = self._check(handler_call_details, role, method)
            if refusal is not None:
                return _with_behavior(handler, lambda _behavior, _streaming: refusal)
            client = f"token:{record.id}"
            if method == _BATCH:
                handler = _with_behavior(handler, lambda behavior, _streaming:
                                         _checking_batch(behavior, record))
        if self.limits.active and method.startswith(f"/{SERVICE.full_name}/"):
            return _with_behavior(handler, lambda behavior, streaming:
                                  _admitted(behavior, self.limits, client, streaming))
        return handler

    def _check(self, details, role: Role, method: str
               ) -> tuple[TokenRecord | None, Behavior | None]:
        header = dict(details.invocation_metadata or ()).get(AUTHORIZATION, "")
        scheme, _, token = header.partition(" ")
        if not header:
            return None, _refusal(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                                  f"{method} needs a token with the {role.value} role "
                                  "(--token, $METASERVER_TOKEN or a token file)")
        record = self.tokens.authenticate(token.strip()) if scheme.lower() == "bearer" \
            else None
        if record is None:
            return None, _refusal(grpc.StatusCode.UNAUTHENTICATED, errno.EACCES,
                                  "token not accepted: unknown, revoked or malformed")
        if not record.grants(role):
            return None, _refusal(grpc.StatusCode.PERMISSION_DENIED, errno.EPERM,
                                  f"token {record.id} ({record.name}: "
                                  f"{','.join(record.roles)}) lacks the {role.value} role "
                                  f"{method} needs")
        return record, None
