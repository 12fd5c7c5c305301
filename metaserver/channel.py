"""How anything that calls a metaserver opens its channel: TLS (grpcio's own ssl
credentials, with a client certificate for mutual TLS) and the bearer token.

The token travels as `authorization: Bearer TOKEN` on every call, added by a client
interceptor rather than grpc's call credentials, which gRPC sends only over TLS: on
loopback a token without TLS is allowed. A call that already carries an authorization
header keeps it (a follower forwards its client's own).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

AUTHORIZATION = "authorization"
TOKEN_ENV = "METASERVER_TOKEN"
TOKEN_FILE_ENV = "METASERVER_TOKEN_FILE"


class CredentialsError(ValueError):
    """A token or certificate file cannot be read; the message says which and why."""


def read_credential_file(path: str, what: str) -> bytes:
    """A token, key or certificate file's bytes; CredentialsError naming it if unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Credentials:
    """What a caller proves itself with. `tls` is on when any certificate file is
    given or `tls=True` (then the system's root CAs verify the server)."""
    token: str = ""
    tls: bool = False
    ca_file: str = ""         # CA that signed the server's certificate
    cert_file: str = ""       # this client's certificate chain (mutual TLS)
    key_file: str = ""

    @classmethod
    def resolve(cls, token: str | None = None, token_file: str | None = None,
                **tls) -> Credentials:
        """The token from `token`, else the first word of `token_file`, else
        $METASERVER_TOKEN, else the file named by $METASERVER_TOKEN_FILE; no token if
        none of them is set."""
        if not token and not token_file:
            token = os.environ.get(TOKEN_ENV, "")
            token_file = "" if token else os.environ.get(TOKEN_FILE_ENV, "")
        if not token and token_file:
            token = next(iter(read_credential_file(token_file, "token file").decode().split()), "")
        return cls(token=token or "", **{k: v for k, v in tls.items() if v is not None})

    @property
    def secure(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file or self.key_file)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert_file) != bool(self.key_file):
            raise CredentialsError("a client certificate needs its key, and a key its "
                                   "certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=read_credential_file(self.ca_file, "CA file") if self.ca_file else None,
            private_key=read_credential_file(self.key_file, "key file") if self.key_file else None,
            certificate_chain=read_credential_file(self.cert_file, "certificate file")
            if self.cert_file else None)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._header = (AUTHORIZATION, f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if any(key == AUTHORIZATION for key, _ in metadata):
            return details
        # grpc hands interceptors its own namedtuple of call details.
        return details._replace(metadata=metadata + [self._header])

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)


def open_channel(address: str, credentials: Credentials = Credentials(),
                 options: Sequence[tuple[str, object]] = (),
                 interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = ()) -> grpc.Channel:
    """A channel to `address` with `credentials`, and `interceptors` outermost."""
    if credentials.secure:
        channel = grpc.secure_channel(address, credentials.channel_credentials(),
                                      options=list(options))
    else:
        channel = grpc.insecure_channel(address, options=list(options))
    if credentials.token:
        channel = grpc.intercept_channel(channel, _BearerToken(credentials.token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
